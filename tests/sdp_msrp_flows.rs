//! MSRP offer/answer as the client and server use it: a chat session over
//! loopback, a Large Message (seed 003 9.x), a file transfer (RFC 5547) and a
//! path through a relay.

use isc::proto::sdp::{
    ConnectionAddress, Direction, FileSelector, MediaLine, MsrpAnswerParams, MsrpMedia, Sdp,
    SdpError, Setup, SetupPreference, TcpActiveSide, parse_sdp, tcp_active_side,
};
use std::net::Ipv4Addr;

fn lo() -> ConnectionAddress {
    ConnectionAddress::Ip(Ipv4Addr::LOCALHOST.into())
}

/// Offer → wire → answer → wire → both sides read the same result.
fn exchange(
    offer_line: MsrpMedia,
    ours: &MsrpAnswerParams,
) -> Result<(MsrpMedia, MsrpMedia), SdpError> {
    let offer = Sdp::new("alice", 1, lo()).with_media(offer_line);
    let received = parse_sdp(&offer.to_bytes())?;
    assert_eq!(received, offer);
    let answer = received.answer("bob", 2, lo(), |line| match line {
        MediaLine::Msrp(m) => m.answer(ours).ok().map(MediaLine::Msrp),
        _ => None,
    })?;
    let back = parse_sdp(&answer.to_bytes())?;
    assert_eq!(back, answer);
    let o = received.msrp().next().cloned().expect("offered line");
    let a = back.msrp().next().cloned().expect("answered line");
    Ok((o, a))
}

#[test]
fn chat_session_on_loopback() {
    let offer = MsrpMedia::chat_offer(40001, lo(), vec!["msrp://127.0.0.1:40001/a1;tcp".into()]);
    let ours = MsrpAnswerParams::chat(40002, lo(), vec!["msrp://127.0.0.1:40002/b1;tcp".into()]);
    let (o, a) = exchange(offer, &ours).unwrap();
    assert_eq!(o.setup, Some(Setup::ActPass));
    assert_eq!(a.setup, Some(Setup::Active));
    assert_eq!(
        a.accept_types,
        [
            "message/cpim",
            "text/plain",
            "application/im-iscomposing+xml"
        ]
    );
    assert_eq!(a.own_uri(), Some("msrp://127.0.0.1:40002/b1;tcp"));
    assert_eq!(tcp_active_side(&o, &a).unwrap(), TcpActiveSide::Answerer);
}

#[test]
fn answerer_may_choose_passive() {
    let offer = MsrpMedia::chat_offer(40001, lo(), vec!["msrp://127.0.0.1:40001/a1;tcp".into()]);
    let mut ours =
        MsrpAnswerParams::chat(40002, lo(), vec!["msrp://127.0.0.1:40002/b1;tcp".into()]);
    ours.setup_preference = SetupPreference::Passive;
    let (o, a) = exchange(offer, &ours).unwrap();
    assert_eq!(tcp_active_side(&o, &a).unwrap(), TcpActiveSide::Offerer);
}

#[test]
fn large_message_is_answered_recvonly() {
    let mut offer = MsrpMedia::offer(
        40003,
        lo(),
        vec!["msrp://127.0.0.1:40003/lm;tcp".into()],
        &["message/cpim"],
    );
    offer.direction = Direction::SendOnly;
    offer.file_size = Some(3_000_000);
    let ours = MsrpAnswerParams::chat(40004, lo(), vec!["msrp://127.0.0.1:40004/r;tcp".into()]);
    let (o, a) = exchange(offer, &ours).unwrap();
    assert!(o.is_large_message());
    assert_eq!(o.file_size, Some(3_000_000));
    assert_eq!(a.direction, Direction::RecvOnly);
}

#[test]
fn file_transfer_is_told_apart() {
    let mut offer = MsrpMedia::offer(
        40005,
        lo(),
        vec!["msrp://127.0.0.1:40005/ft;tcp".into()],
        &["image/jpeg"],
    );
    offer.direction = Direction::SendOnly;
    offer.file_selector = Some(FileSelector {
        name: Some("holiday photo.jpg".into()),
        size: Some(32349),
        file_type: Some("image/jpeg".into()),
        hash: None,
    });
    offer.file_transfer_id = Some("vBnG916bdberum2fFEABR1FR3ExZMUrd".into());
    let mut ours = MsrpAnswerParams::chat(40006, lo(), vec!["msrp://127.0.0.1:40006/r;tcp".into()]);
    ours.accept_types = vec!["image/*".into()];
    let (o, a) = exchange(offer, &ours).unwrap();
    assert!(o.is_file_transfer() && !o.is_large_message());
    assert_eq!(a.accept_types, ["image/jpeg"]);
    assert_eq!(a.file_selector, o.file_selector);
    assert_eq!(a.file_transfer_id, o.file_transfer_id);
    assert_eq!(a.direction, Direction::RecvOnly);
}

#[test]
fn relay_path_keeps_every_hop() {
    let path = vec![
        "msrps://relay.example.com:2855/r9s;tcp".to_string(),
        "msrp://127.0.0.1:40007/me;tcp".to_string(),
    ];
    let offer = MsrpMedia::chat_offer(40007, lo(), path.clone());
    let body = Sdp::new("alice", 1, lo()).with_media(offer).to_string();
    assert!(body.contains(
        "a=path:msrps://relay.example.com:2855/r9s;tcp msrp://127.0.0.1:40007/me;tcp\r\n"
    ));
    let back = parse_sdp(body.as_bytes()).unwrap();
    assert_eq!(back.msrp().next().unwrap().path, path);
}

#[test]
fn nothing_in_common_is_488() {
    let offer = MsrpMedia::offer(
        1,
        lo(),
        vec!["msrp://127.0.0.1:1/a;tcp".into()],
        &["application/x-only"],
    );
    let ours = MsrpAnswerParams::chat(2, lo(), vec!["msrp://127.0.0.1:2/b;tcp".into()]);
    let err = exchange(offer, &ours).unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableMedia);
    assert!(err.is_not_acceptable());
}

#[test]
fn wildcard_offer_accepts_ours() {
    let offer = MsrpMedia::offer(1, lo(), vec!["msrp://127.0.0.1:1/a;tcp".into()], &["*"]);
    let ours = MsrpAnswerParams::chat(2, lo(), vec!["msrp://127.0.0.1:2/b;tcp".into()]);
    let (_, a) = exchange(offer, &ours).unwrap();
    assert_eq!(a.accept_types.len(), 3);
}
