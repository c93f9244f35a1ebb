//! `free-play`: Bob and Carol are bots that greet Alice and answer her
//! pager messages. Interactively (`isc demo`), Alice's tv is the person at
//! the TUI; headless, her tv is a bot too and says hello once.

use std::time::Duration;

use super::live::answer_back;
use super::{Scenario, ScriptFuture, Stage, Step, composing, got_message};

pub const SCENARIO: Scenario = Scenario::new(
    "free-play",
    "Bob and Carol greet Alice and answer whatever she writes to them",
    &["alice/tv", "bob/phone", "carol/laptop"],
    STEPS,
    script,
);

const STEPS: &[Step] = &[
    Step::wire("1", "alice/tv", "server:reg", "REGISTER"),
    Step::wire("2", "bob/phone", "server", "MESSAGE").carrying("application/im-iscomposing+xml"),
    Step::seen("3", "alice/tv", "Bob is composing"),
    Step::wire("4", "bob/phone", "server", "MESSAGE").carrying("Hi Alice"),
    Step::seen("5", "alice/tv", "shows Bob's greeting"),
    Step::wire("6", "alice/tv", "server", "MESSAGE").carrying("Hello Bob"),
    Step::wire("7", "server", "bob/phone", "MESSAGE").carrying("Hello Bob"),
    Step::seen("8", "alice/tv", "shows Bob's answer"),
];

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let alice = st.aor("alice");
        let bob_aor = st.aor("bob");
        let tv = st.join("alice/tv").await?;
        let bob = st.join("bob/phone").await?;
        let carol = st.join("carol/laptop").await?;
        bob.typing(&alice)?;
        st.expect("3", &tv, composing(&bob_aor, true)).await?;
        bob.message(
            &alice,
            "Hi Alice! Write to bob or carol (:chat carol): we answer.",
        )?;
        st.expect("5", &tv, got_message(&bob_aor, "Hi Alice"))
            .await?;
        if st.interactive() {
            // The person writes; the bots answer after the script.
            return Ok(());
        }
        let bots = answer_back(vec![bob.clone(), carol.clone()], alice.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        tv.message(&bob_aor, "Hello Bob")?;
        let answered = st
            .expect("8", &tv, got_message(&bob_aor, "you said \"Hello Bob\""))
            .await;
        bots.abort();
        answered.map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{DemoOptions, run};

    #[tokio::test]
    async fn free_play_headless_passes_every_step() {
        let report = run(&SCENARIO, DemoOptions::default()).await.unwrap();
        assert!(report.passed(), "{:?}", report.checklist);
    }
}
