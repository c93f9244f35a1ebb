//! `pager`: Alice's tv and phone and Bob's phone register and watch their
//! registrations; Bob types and pages Alice; both her devices get it; her
//! tv answers.

use super::{Scenario, ScriptFuture, Stage, Step, composing, delivered, got_message, sees};

pub const SCENARIO: Scenario = Scenario::new(
    "pager",
    "Bob pages Alice's two devices (isComposing, MESSAGE); her tv answers",
    &["alice/tv", "alice/phone", "bob/phone"],
    STEPS,
    script,
);

const STEPS: &[Step] = &[
    Step::wire("1", "alice/tv", "server:reg", "REGISTER"),
    Step::wire("2", "server:reg", "alice/tv", "200 OK (REGISTER)").carrying("pub-gruu"),
    Step::wire("3", "alice/tv", "server:reg", "SUBSCRIBE").carrying("Event: reg"),
    Step::wire("4", "server:reg", "alice/tv", "NOTIFY").carrying("application/reginfo+xml"),
    Step::wire("5", "alice/phone", "server:reg", "REGISTER"),
    Step::wire("6", "server:reg", "alice/phone", "200 OK (REGISTER)").carrying("pub-gruu"),
    Step::wire("7", "alice/phone", "server:reg", "SUBSCRIBE"),
    Step::wire("8", "server:reg", "alice/tv", "NOTIFY")
        .carrying("<display-name>phone</display-name>"),
    Step::seen("9", "alice/tv", "sees alice/phone among its devices"),
    Step::wire("10", "bob/phone", "server:reg", "REGISTER"),
    Step::wire("11", "bob/phone", "server:reg", "SUBSCRIBE"),
    Step::wire("12", "bob/phone", "server", "MESSAGE").carrying("application/im-iscomposing+xml"),
    Step::wire("13a", "server", "alice/tv", "MESSAGE").carrying("<state>active</state>"),
    Step::wire("13b", "server", "alice/phone", "MESSAGE").carrying("<state>active</state>"),
    Step::seen("14a", "alice/tv", "Bob is composing"),
    Step::seen("14b", "alice/phone", "Bob is composing"),
    Step::wire("15", "bob/phone", "server", "MESSAGE").carrying("Hello Alice"),
    Step::wire("16a", "server", "alice/tv", "MESSAGE").carrying("Hello Alice"),
    Step::wire("16b", "server", "alice/phone", "MESSAGE").carrying("Hello Alice"),
    Step::seen("17", "bob/phone", "its message delivered (200)"),
    Step::seen("18a", "alice/tv", "shows Bob's message"),
    Step::seen("18b", "alice/phone", "shows Bob's message"),
    Step::wire("19", "alice/tv", "server", "MESSAGE").carrying("Hi Bob"),
    Step::wire("20", "server", "bob/phone", "MESSAGE").carrying("Hi Bob"),
    Step::seen("21", "bob/phone", "shows Alice's answer"),
    Step::seen("22", "alice/tv", "its answer delivered"),
];

fn script(st: &mut Stage) -> ScriptFuture<'_> {
    Box::pin(async move {
        let alice = st.aor("alice");
        let bob = st.aor("bob");
        let alice_tv = st.join("alice/tv").await?;
        let alice_phone = st.join("alice/phone").await?;
        st.expect("9", &alice_tv, sees(&alice_phone)).await?;
        let bob_phone = st.join("bob/phone").await?;

        bob_phone.typing(&alice)?;
        st.expect("14a", &alice_tv, composing(&bob, true)).await?;
        st.expect("14b", &alice_phone, composing(&bob, true))
            .await?;

        bob_phone.message(&alice, "Hello Alice, movie tonight?")?;
        st.expect("17", &bob_phone, delivered()).await?;
        st.expect("18a", &alice_tv, got_message(&bob, "Hello Alice"))
            .await?;
        st.expect("18b", &alice_phone, got_message(&bob, "Hello Alice"))
            .await?;

        alice_tv.message(&bob, "Hi Bob, yes!")?;
        st.expect("21", &bob_phone, got_message(&alice, "Hi Bob"))
            .await?;
        st.expect("22", &alice_tv, delivered()).await?;
        Ok(())
    })
}
