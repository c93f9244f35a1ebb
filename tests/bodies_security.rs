//! Every XML body reader refuses DTDs and entity declarations, and bounds size
//! and depth.

use isc::proto::bodies::{
    BodyError, cm_recommendation, conference_info, cv_cancellation, is_composing,
    isc_content_request, reginfo, resource_lists, xml,
};

type Reader = fn(&[u8]) -> Result<(), BodyError>;

fn readers() -> Vec<(&'static str, Reader)> {
    vec![
        ("isc_content_request", |b| {
            isc_content_request::parse(b).map(drop)
        }),
        ("cm_recommendation", |b| {
            cm_recommendation::parse(b).map(drop)
        }),
        ("cv_cancellation", |b| cv_cancellation::parse(b).map(drop)),
        ("conference_info", |b| conference_info::parse(b).map(drop)),
        ("is_composing", |b| is_composing::parse(b).map(drop)),
        ("resource_lists", |b| resource_lists::parse(b).map(drop)),
        ("reginfo", |b| reginfo::parse(b).map(drop)),
    ]
}

#[test]
fn billion_laughs_is_refused_by_every_reader() {
    let doc = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<isComposing><state>&lol3;</state></isComposing>"#;
    for (name, read) in readers() {
        assert_eq!(read(doc), Err(BodyError::DtdRefused), "{name}");
    }
    // also behind the sub-level header block
    let mut wrapped = b"Content-Type: text/xml\r\n\r\n".to_vec();
    wrapped.extend_from_slice(doc);
    assert_eq!(
        cm_recommendation::parse(&wrapped).map(drop),
        Err(BodyError::DtdRefused)
    );
    assert_eq!(
        cv_cancellation::parse(&wrapped).map(drop),
        Err(BodyError::DtdRefused)
    );
}

#[test]
fn external_entity_is_refused() {
    let doc = br#"<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><r>&xxe;</r>"#;
    for (name, read) in readers() {
        assert_eq!(read(doc), Err(BodyError::DtdRefused), "{name}");
    }
    // an undeclared entity is refused too, never looked up
    let doc = b"<isComposing><state>&xxe;</state></isComposing>";
    assert_eq!(
        is_composing::parse(doc).map(drop),
        Err(BodyError::UnknownEntity("xxe".into()))
    );
}

#[test]
fn size_and_depth_are_bounded() {
    let deep = format!(
        "<resource-lists>{}{}</resource-lists>",
        "<list>".repeat(xml::MAX_XML_DEPTH),
        "</list>".repeat(xml::MAX_XML_DEPTH)
    );
    assert_eq!(
        resource_lists::parse(deep.as_bytes()).map(drop),
        Err(BodyError::TooDeep {
            limit: xml::MAX_XML_DEPTH
        })
    );
    let mut big = b"<conference-info entity=\"x\" version=\"1\">".to_vec();
    big.resize(xml::MAX_XML_BYTES + 1, b' ');
    assert!(matches!(
        conference_info::parse(&big),
        Err(BodyError::TooLarge { .. })
    ));
}

#[test]
fn error_messages_say_why() {
    let e = is_composing::parse(b"<!DOCTYPE x><x/>").unwrap_err();
    assert!(e.to_string().contains("DTD"), "{e}");
}
