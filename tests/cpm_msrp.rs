//! The CPM function's MSRP relay over real sockets: a 5 MiB message
//! chunked across it with a success REPORT, MSRP 400 for bad headers,
//! unframeable input closing only that connection, 481 for an unknown
//! session.

mod common;
mod cpm_common;

use cpm_common::*;
use isc::proto::msrp::{
    ByteRange, Chunker, MsrpHeader, MsrpMessage, MsrpMethod, MsrpPath, MsrpUri,
};

fn chat(to: &MsrpPath, from: &MsrpUri, tid: &str, mid: &str, text: &str) -> MsrpMessage {
    let body = format!(
        "From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
    )
    .into_bytes();
    let n = body.len() as u64;
    MsrpMessage::request(
        MsrpMethod::Send,
        tid,
        to.clone(),
        MsrpPath::single(from.clone()),
    )
    .with_header(MsrpHeader::MessageId(mid.into()))
    .with_header(MsrpHeader::ByteRange(ByteRange {
        start: 1,
        end: Some(n),
        total: Some(n),
    }))
    .with_body("message/cpim", body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_mib_message_crosses_chunked_with_success_report() {
    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    let cpim_head = b"From: <sip:alice@isc.local>\r\nTo: <sip:bob@isc.local>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    let mut body = cpim_head;
    body.extend((0..5 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let total = body.len() as u64;
    let mut chunker = Chunker::new(
        s.to_server.clone(),
        MsrpPath::single(s.alice_uri.clone()),
        "big-1",
        Some("message/cpim".into()),
        body.clone(),
        256 * 1024,
    )
    .with_reports(Some(true), None);
    let mut n = 0;
    let mut a = s.a;
    let writer = tokio::spawn(async move {
        while let Some(mut chunk) = chunker.next_chunk() {
            n += 1;
            chunk.transaction_id = format!("big{n:04}");
            a.send(&chunk).await;
        }
        a
    });
    let mut got = vec![0u8; total as usize];
    let mut received = 0u64;
    while received < total {
        let m = s.b.recv_request().await;
        assert_eq!(m.message_id(), Some("big-1"));
        assert_eq!(m.to_path().unwrap(), &MsrpPath::single(s.bob.uri.clone()));
        let r = m.byte_range().unwrap();
        assert_eq!(r.total, Some(total));
        let part = m.body.unwrap();
        let start = (r.start - 1) as usize;
        got[start..start + part.len()].copy_from_slice(&part);
        received += part.len() as u64;
    }
    assert!(got == body, "the message arrives intact");
    let mut a = writer.await.unwrap();
    // Alice gets a 200 per chunk and one success REPORT for the whole.
    let report = loop {
        let m = a.recv().await;
        if m.method() == Some(&MsrpMethod::Report) {
            break m;
        }
        assert_eq!(m.code(), Some(200));
    };
    assert_eq!(report.message_id(), Some("big-1"));
    assert_eq!(report.status().unwrap().code, 200);
    assert_eq!(
        report.byte_range().unwrap(),
        ByteRange {
            start: 1,
            end: Some(total),
            total: Some(total)
        }
    );
    assert_eq!(
        report.to_path().unwrap(),
        &MsrpPath::single(s.alice_uri.clone())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_headers_get_400_and_the_session_goes_on() {
    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    let bad = format!(
        "MSRP bad1 SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: m0\r\nByte-Range: one-two/three\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------bad1$\r\n",
        s.to_server, s.alice_uri
    );
    s.a.send_raw(bad.as_bytes()).await;
    let r = s.a.recv().await;
    assert_eq!(r.transaction_id, "bad1");
    assert_eq!(r.code(), Some(400));
    // A SEND without Message-ID is framed but incomplete: 400 too.
    let missing = format!(
        "MSRP bad2 SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\n-------bad2$\r\n",
        s.to_server, s.alice_uri
    );
    s.a.send_raw(missing.as_bytes()).await;
    assert_eq!(s.a.recv().await.code(), Some(400));
    s.a.send(&chat(
        &s.to_server,
        &s.alice_uri,
        "ok1",
        "m1",
        "after the bad one",
    ))
    .await;
    assert_eq!(s.a.recv().await.code(), Some(200));
    let m = s.b.recv_request().await;
    assert_eq!(m.message_id(), Some("m1"));
    server.shutdown().await;
}

#[tokio::test]
async fn unframeable_input_closes_only_that_connection() {
    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    let mut intruder = MsrpConn::connect(server.msrp_addr()).await;
    intruder
        .send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(intruder.closed_within(5.0).await, "the server closes it");
    s.a.send(&chat(&s.to_server, &s.alice_uri, "ok1", "m1", "still here"))
        .await;
    assert_eq!(s.a.recv().await.code(), Some(200));
    assert_eq!(s.b.recv_request().await.message_id(), Some("m1"));
    server.shutdown().await;
}

#[tokio::test]
async fn send_to_unknown_session_gets_481() {
    let server = start(|_| {}).await;
    let mut s = one_device_session(&server).await;
    let mut other = MsrpConn::connect(server.msrp_addr()).await;
    let nowhere = MsrpPath::single(MsrpUri::new(
        "127.0.0.1",
        server.msrp_addr().port(),
        "no-such-session-0000",
    ));
    other
        .send(&chat(&nowhere, &s.alice_uri, "x481", "m9", "lost"))
        .await;
    let r = other.recv().await;
    assert_eq!(r.transaction_id, "x481");
    assert_eq!(r.code(), Some(481));
    // Alice's session is untouched.
    s.a.send(&chat(&s.to_server, &s.alice_uri, "ok1", "m1", "hi"))
        .await;
    assert_eq!(s.a.recv().await.code(), Some(200));
    server.shutdown().await;
}
