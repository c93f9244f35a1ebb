//! Seed 002 D.2 B.1: the pushed `message/sip` payload of the seed, read by
//! the client. The file holds the seed's bytes with its page indentation
//! taken off and LF line ends (the seed shows SIP, whose wire form is
//! CRLF: converted here). The trailing blank after `GMT` is the seed's.
//!
//! D.2 B.2 (the multipart of a stored session) is not transcribed: the
//! seed's text is garbled (blank lines inside header blocks, a part's
//! Content-Type after its first line, a `message/msrp` part whose SEND has
//! no end-line of its own). The client follows RFC 2046 §5.1 and RFC 4975
//! §7 there, as the server writes it (tests in `client::deferred::unwrap`).

use isc::client::deferred::unwrap::{LateKind, unwrap_deferred};

#[test]
fn the_seeds_pushed_pager_message_reads_back() {
    let text = std::fs::read_to_string("tests/data/seed002/d2_b1_pushed_message_sip.txt").unwrap();
    let wire = text.replace('\n', "\r\n");
    let m = unwrap_deferred("message/sip", wire.as_bytes()).expect("the seed's example reads");
    assert_eq!(m.kind, LateKind::Pager);
    assert_eq!(m.from, "sip:user1@imserver.com");
    assert_eq!(m.to, "sip:user2@imserver.com");
    assert_eq!(m.call_id, "asd88asd77a@1.2.3.4");
    assert_eq!(m.key, "sip:asd88asd77a@1.2.3.4 1");
    assert_eq!(m.date.as_deref(), Some("Thu, 21 Feb 2002 13:02:03 GMT"));
    assert_eq!(m.sent_unix, Some(1_014_296_523));
    assert_eq!(m.text(), "Watson, come here.");
}
