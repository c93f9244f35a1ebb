//! Turning a toml error's byte span into `line`, `column` and the dotted key
//! it is about. A heuristic over the text (toml gives a span, not a key):
//! the nearest table header above, plus the key of the `key = value` line
//! the span falls in (or the first such line above it, for a value spread
//! over several lines).

/// 1-based line and column (in characters) of `offset`, and the key there.
pub(super) fn locate(text: &str, offset: usize) -> (usize, usize, Option<String>) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;

    let lines: Vec<&str> = text.split('\n').collect();
    let index = line - 1;
    let mut key = None;
    let mut table = None;
    for i in (0..=index.min(lines.len().saturating_sub(1))).rev() {
        let l = lines.get(i).map_or("", |l| strip_comment(l).trim());
        if let Some(h) = header(l) {
            table = Some(h);
            break;
        }
        if key.is_none()
            && let Some((k, _)) = l.split_once('=')
        {
            let k = k.trim();
            if !k.is_empty() && !k.starts_with('"') && !k.contains(['[', '{', ',']) {
                key = Some(k.to_string());
            } else if let Some(unquoted) = k.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                key = Some(unquoted.to_string());
            }
        }
    }
    let dotted = match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (Some(t), None) => Some(t),
        (None, k) => k,
    };
    (line, column, dotted)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `[a.b]` or `[[a.b]]` → `a.b`.
fn header(line: &str) -> Option<String> {
    let inner = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
    let inner = inner.or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))?;
    Some(
        inner
            .split('.')
            .map(|p| p.trim().trim_matches('"'))
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The line without a trailing `# comment` (ignoring `#` inside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_in_table() {
        let t = "# top\n[server]\ndomain = \"x\"\nlisten = \"nope\"\n";
        let at = t.find("\"nope\"").unwrap();
        assert_eq!(locate(t, at), (4, 10, Some("server.listen".into())));
    }

    #[test]
    fn multi_line_value() {
        let t = "[[server.users]]\nname = \"a\"\nchat_blacklist = [\n  \"x\",\n  3,\n]\n";
        let at = t.find('3').unwrap();
        assert_eq!(
            locate(t, at).2.as_deref(),
            Some("server.users.chat_blacklist")
        );
    }

    #[test]
    fn header_itself() {
        let t = "[server.nope]\n";
        assert_eq!(locate(t, 1).2.as_deref(), Some("server.nope"));
    }

    #[test]
    fn offsets_past_the_end_and_inside_chars() {
        let t = "a = \"é\"";
        let _ = locate(t, 6);
        let _ = locate(t, 100);
    }
}
