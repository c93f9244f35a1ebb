//! The Kamailio deployment (`assets/deploy/kamailio/kamailio.cfg`): the
//! shipped configuration with its addresses filled in, and the generated
//! `isc-users.cfg` it includes (the users' passwords and the service users),
//! so Kamailio authenticates against the same accounts as `isc server`.
//! `isc server --write-kamailio DIR` and the tests write both files.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use crate::config::ServerConfig;

/// The shipped configuration, with its default addresses.
pub const CFG_TEMPLATE: &str = include_str!("../../assets/deploy/kamailio/kamailio.cfg");
/// The file `kamailio.cfg` includes.
pub const USERS_FILE: &str = "isc-users.cfg";

/// What is wrong with a deployment's settings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KamailioCfgError {
    #[error("the template has no `#!substdef` line for {0}")]
    MissingSubstdef(&'static str),
    #[error(
        "{what} {value:?} cannot be written into kamailio.cfg (no quotes, backslashes, `!` or line breaks)"
    )]
    Unquotable { what: &'static str, value: String },
    #[error("Kamailio and the application server need IPv4 addresses, got {0}")]
    NotIpv4(SocketAddr),
}

/// Where Kamailio (the SIP/IP core) and `isc server` (the AS) listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KamailioSite {
    pub core: SocketAddr,
    pub app_server: SocketAddr,
    pub domain: String,
}

impl KamailioSite {
    /// `template` (normally [`CFG_TEMPLATE`]) with the values of its
    /// `#!substdef` lines replaced by this site's.
    pub fn render(&self, template: &str) -> Result<String, KamailioCfgError> {
        for addr in [self.core, self.app_server] {
            if !addr.is_ipv4() {
                return Err(KamailioCfgError::NotIpv4(addr));
            }
        }
        check_quotable("domain", &self.domain)?;
        let values = [
            ("CORE_IP", self.core.ip().to_string()),
            ("CORE_PORT", self.core.port().to_string()),
            ("AS_IP", self.app_server.ip().to_string()),
            ("AS_PORT", self.app_server.port().to_string()),
            ("ISC_DOMAIN", self.domain.clone()),
        ];
        let mut out = String::with_capacity(template.len());
        let mut seen = [false; 5];
        for line in template.lines() {
            let mut written = false;
            for (i, (name, value)) in values.iter().enumerate() {
                if line.starts_with(&format!("#!substdef \"!{name}!")) {
                    let _ = writeln!(out, "#!substdef \"!{name}!{value}!g\"");
                    seen[i] = true;
                    written = true;
                }
            }
            if !written {
                out.push_str(line);
                out.push('\n');
            }
        }
        match seen.iter().position(|s| !s) {
            Some(i) => Err(KamailioCfgError::MissingSubstdef(
                values.get(i).map(|v| v.0).unwrap_or("?"),
            )),
            None => Ok(out),
        }
    }
}

/// `isc-users.cfg`: `route[ISC_PASSWORD]` sets `$var(password)` for `$au`
/// (empty for an unknown user, which then fails authentication) and
/// `route[ISC_SERVICE_URI]` says whether `$rU` is one of the AS's service
/// users (conference factory, `conf-` session identities, groups,
/// Deferred, history, content).
pub fn users_cfg(config: &ServerConfig) -> Result<String, KamailioCfgError> {
    let mut out = String::from(
        "# Generated from isc's [server] config (isc server --write-kamailio): do not edit.\n\
         route[ISC_PASSWORD] {\n\t$var(password) = \"\";\n\tswitch ($au) {\n",
    );
    for u in config.effective_users() {
        check_quotable("user name", &u.name)?;
        check_quotable("password", &u.password)?;
        let _ = writeln!(
            out,
            "\t\tcase \"{}\": $var(password) = \"{}\"; break;",
            u.name, u.password
        );
    }
    out.push_str("\t}\n}\n\nroute[ISC_SERVICE_URI] {\n");
    let mut services: Vec<String> = [
        config.conference_factory_uri(),
        config.deferred_uri(),
        config.history_uri(),
    ]
    .iter()
    .filter_map(|uri| crate::server::sip_util::UriView::parse(uri).and_then(|v| v.user))
    .collect();
    services.push(crate::server::content_list::CONTENT_LIST_USER.to_owned());
    services.extend(config.groups.iter().map(|g| g.name.clone()));
    for s in &services {
        check_quotable("service user", s)?;
    }
    // seed 003 7.2.x: ad-hoc session identities are sip:conf-<id>@domain.
    out.push_str("\tif ($rU =~ \"^conf-\") return 1;\n");
    for s in services {
        let _ = writeln!(out, "\tif ($rU == \"{s}\") return 1;");
    }
    out.push_str("\treturn -1;\n}\n");
    Ok(out)
}

/// Writes `kamailio.cfg` (for `site`) and `isc-users.cfg` (from `config`)
/// into `dir`.
pub fn write_site(
    dir: &Path,
    site: &KamailioSite,
    config: &ServerConfig,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Both checked before anything is written.
    let main = site.render(CFG_TEMPLATE)?;
    let users = users_cfg(config)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("kamailio.cfg"), main)?;
    std::fs::write(dir.join(USERS_FILE), users)?;
    Ok(())
}

/// Scale-out behind Kamailio's dispatcher: the cfg with `WITH_DISPATCHER`
/// defined, `dispatcher.list` (set 1 = every instance, set 100+N = instance
/// N alone) and `isc-instances.cfg` (the REGISTER copy to every instance),
/// for `instances` = (instance number, SIP address). `site.app_server` is
/// not used by that cfg.
pub fn write_dispatcher_site(
    dir: &Path,
    site: &KamailioSite,
    instances: &[(u16, SocketAddr)],
    config: &ServerConfig,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if instances.is_empty() {
        return Err("no application server instance".into());
    }
    let mut list =
        String::from("# set 1: every isc server instance; set 100+N: instance N alone\n");
    let mut replicate = String::from(
        "# Generated by isc: each accepted REGISTER is copied to every instance.\nroute[REPLICATE_REGISTER] {\n",
    );
    for (n, addr) in instances {
        if !addr.is_ipv4() {
            return Err(KamailioCfgError::NotIpv4(*addr).into());
        }
        let _ = writeln!(list, "1 sip:{addr}");
        let _ = writeln!(list, "{} sip:{addr}", 100 + u32::from(*n));
        let _ = writeln!(replicate, "\tforward(\"{}\", {});", addr.ip(), addr.port());
    }
    replicate.push_str("}\n");
    let cfg = site.render(CFG_TEMPLATE)?;
    let cfg = match cfg.split_once('\n') {
        Some((first, rest)) => format!("{first}\n#!define WITH_DISPATCHER\n{rest}"),
        None => return Err("empty kamailio.cfg template".into()),
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("kamailio.cfg"), cfg)?;
    std::fs::write(dir.join(USERS_FILE), users_cfg(config)?)?;
    std::fs::write(dir.join("dispatcher.list"), list)?;
    std::fs::write(dir.join("isc-instances.cfg"), replicate)?;
    Ok(())
}

fn check_quotable(what: &'static str, value: &str) -> Result<(), KamailioCfgError> {
    if value.is_empty() || value.contains(['"', '\\', '!', '\n', '\r', '$']) {
        return Err(KamailioCfgError::Unquotable {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GroupConfig, UserConfig};

    fn site() -> KamailioSite {
        KamailioSite {
            core: "127.0.0.1:25060".parse().unwrap(),
            app_server: "127.0.0.1:25070".parse().unwrap(),
            domain: "example.test".into(),
        }
    }

    #[test]
    fn dispatcher_site_lists_every_instance() {
        let dir = std::env::temp_dir().join(format!("isc-kdisp-{}", std::process::id()));
        let instances = [
            (1, "127.0.0.1:25071".parse().unwrap()),
            (2, "127.0.0.1:25072".parse().unwrap()),
            (3, "127.0.0.1:25073".parse().unwrap()),
        ];
        write_dispatcher_site(&dir, &site(), &instances, &ServerConfig::default()).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let cfg = read("kamailio.cfg");
        assert!(
            cfg.starts_with("#!KAMAILIO\n#!define WITH_DISPATCHER\n"),
            "{cfg}"
        );
        let list = read("dispatcher.list");
        for (n, port) in [(1, 25071), (2, 25072), (3, 25073)] {
            assert!(
                list.contains(&format!("\n1 sip:127.0.0.1:{port}\n")),
                "{list}"
            );
            assert!(
                list.contains(&format!("\n{} sip:127.0.0.1:{port}\n", 100 + n)),
                "{list}"
            );
        }
        let copies = read("isc-instances.cfg");
        assert_eq!(
            copies.matches("forward(\"127.0.0.1\", 2507").count(),
            3,
            "{copies}"
        );
        assert!(read(USERS_FILE).contains("route[ISC_PASSWORD]"));
        let _ = std::fs::remove_dir_all(&dir);
        let e = write_dispatcher_site(&dir, &site(), &[], &ServerConfig::default()).unwrap_err();
        assert!(e.to_string().contains("no application server"), "{e}");
        let v6 = [(1, "[::1]:5070".parse().unwrap())];
        assert!(write_dispatcher_site(&dir, &site(), &v6, &ServerConfig::default()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn render_replaces_every_address() {
        let cfg = site().render(CFG_TEMPLATE).unwrap();
        assert!(cfg.contains("#!substdef \"!CORE_PORT!25060!g\"\n"));
        assert!(cfg.contains("#!substdef \"!AS_PORT!25070!g\"\n"));
        assert!(cfg.contains("#!substdef \"!ISC_DOMAIN!example.test!g\"\n"));
        assert!(!cfg.contains("!5060!g"), "the default port is gone");
        assert_eq!(cfg.lines().count(), CFG_TEMPLATE.lines().count());
    }

    #[test]
    fn render_refuses_a_template_without_the_knobs() {
        assert_eq!(
            site().render("#!KAMAILIO\n"),
            Err(KamailioCfgError::MissingSubstdef("CORE_IP"))
        );
        let mut v6 = site();
        v6.core = "[::1]:5060".parse().unwrap();
        assert!(matches!(
            v6.render(CFG_TEMPLATE),
            Err(KamailioCfgError::NotIpv4(_))
        ));
    }

    #[test]
    fn users_cfg_lists_passwords_and_service_users() {
        let mut config = ServerConfig {
            users: vec![
                UserConfig::new("alice", "s3cret"),
                UserConfig::new("bob", "b"),
            ],
            ..ServerConfig::default()
        };
        let group: GroupConfig = toml::from_str("name = \"friends\"").unwrap();
        config.groups.push(group);
        let text = users_cfg(&config).unwrap();
        assert!(text.contains("case \"alice\": $var(password) = \"s3cret\"; break;"));
        assert!(text.contains("case \"bob\": $var(password) = \"b\"; break;"));
        for user in ["conf-factory", "Deferred", "history", "content", "friends"] {
            assert!(
                text.contains(&format!("if ($rU == \"{user}\") return 1;")),
                "{user} in {text}"
            );
        }
        config.users[0].password = "a\"b".into();
        assert!(matches!(
            users_cfg(&config),
            Err(KamailioCfgError::Unquotable {
                what: "password",
                ..
            })
        ));
    }

    proptest::proptest! {
        /// Whatever the config holds, the include either is refused with a
        /// clear error or keeps every value inside its quotes: nothing in a
        /// password can add script to Kamailio's configuration.
        #[test]
        fn users_cfg_never_lets_a_value_out_of_its_quotes(
            name in "[a-z][a-z0-9._-]{0,8}",
            password in "\\PC{0,24}",
        ) {
            let config = ServerConfig {
                users: vec![UserConfig::new(&name, &password)],
                ..ServerConfig::default()
            };
            match users_cfg(&config) {
                Ok(text) => {
                    let expected = format!(
                        "\t\tcase \"{name}\": $var(password) = \"{password}\"; break;\n"
                    );
                    proptest::prop_assert!(text.contains(&expected));
                    for line in text.lines() {
                        proptest::prop_assert_eq!(line.matches('"').count() % 2, 0);
                    }
                }
                Err(e) => {
                    let refused = matches!(e, KamailioCfgError::Unquotable { .. });
                    proptest::prop_assert!(refused);
                }
            }
        }
    }
}
