//! Hostile input never panics the chat code: headless command lines, MSRP
//! bytes on any connection, chat INVITEs with any body.

mod chat_support;

use chat_support::{Net, Peer};
use isc::client::chat_headless::parse_command;
use isc::client::chats::ChatCommand;
use isc::proto::sip::session_timer::SessionTimerConfig;
use proptest::prelude::*;

fn addr(port: u16) -> std::net::SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn established() -> Net {
    let mut net = Net::new(vec![
        Peer::new("alice", 5070, addr(5080), SessionTimerConfig::default()),
        Peer::new("bob", 5080, addr(5070), SessionTimerConfig::default()),
    ]);
    let now = net.now;
    net.peers[0].command(
        now,
        ChatCommand::Start {
            to: "sip:bob@isc.local".into(),
            convergence_id: None,
        },
    );
    net.run();
    let b = net.peers[1].invited().unwrap();
    net.peers[1].command(now, ChatCommand::Accept { chat: b });
    net.run();
    net
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn command_lines_never_panic(line in ".{0,200}") {
        let _ = parse_command(&line, "isc.local");
    }

    #[test]
    fn json_command_lines_never_panic(chat in any::<i64>(), text in ".{0,40}", word in "(chat|chat_send|chat_typing|accept|decline|bye|x)") {
        let line = format!("{{\"cmd\":\"{word}\",\"chat\":{chat},\"to\":{text:?},\"text\":{text:?}}}");
        let _ = parse_command(&line, "isc.local");
    }

    #[test]
    fn msrp_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), conn in 1u64..6) {
        let mut net = established();
        let now = net.now;
        net.peers[0].chats.msrp_accepted(100);
        net.peers[0].chats.msrp_data(now, conn, &bytes);
        net.peers[0].chats.msrp_data(now, 100, &bytes);
        net.run();
    }

    #[test]
    fn msrp_like_frames_never_panic(tid in "[a-z0-9]{1,8}", body in ".{0,80}", range in "[0-9*-]{0,12}") {
        let mut net = established();
        let now = net.now;
        let frame = format!(
            "MSRP {tid} SEND\r\nTo-Path: msrp://127.0.0.1:6070/x;tcp\r\nFrom-Path: msrp://127.0.0.1:6080/y;tcp\r\n\
             Message-ID: m1\r\nByte-Range: {range}\r\nContent-Type: message/cpim\r\n\r\n{body}\r\n-------{tid}$\r\n"
        );
        net.peers[0].chats.msrp_data(now, 1, frame.as_bytes());
        net.run();
    }

    #[test]
    fn chat_invites_with_any_body_never_panic(body in ".{0,300}") {
        let mut net = Net::new(vec![Peer::new("bob", 5080, addr(5070), SessionTimerConfig::default())]);
        let sdp = format!("v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\n{body}");
        let msg = format!(
            "INVITE sip:bob@isc.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@isc.local>;tag=a\r\nTo: <sip:bob@isc.local>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:alice@127.0.0.1:5070>\r\nSession-Expires: {}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            body.len() % 200,
            sdp.len()
        );
        let now = net.now;
        if let Ok(m) = isc::proto::sip::message::parse_message(msg.as_bytes()) {
            let _ = net.peers[0].layer.handle_message(now, m, addr(5070), isc::proto::sip::transaction::Transport::Udp);
            net.peers[0].pump(now);
            if let Some(c) = net.peers[0].invited() {
                net.peers[0].command(now, ChatCommand::Accept { chat: c });
            }
            net.run();
        }
    }
}
