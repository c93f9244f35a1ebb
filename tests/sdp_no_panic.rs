//! The SDP parser never panics: arbitrary bytes, and RFC bodies with random
//! damage (the CI fuzz smoke).

use isc::proto::sdp::parse_sdp;
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("data/sdp/rfc4975_10_1_offer.sdp"),
    include_str!("data/sdp/rfc3264_10_1_reoffer.sdp"),
    include_str!("data/sdp/rfc3264_10_2_offer.sdp"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_sdp(&bytes);
    }

    #[test]
    fn damaged_rfc_bodies(
        seed in 0..SEEDS.len(),
        at in any::<prop::sample::Index>(),
        cut in any::<bool>(),
        insert in "[ -~\r\n]{0,12}",
    ) {
        let body = SEEDS[seed].as_bytes();
        let i = at.index(body.len() + 1);
        let mut damaged = body[..i].to_vec();
        damaged.extend_from_slice(insert.as_bytes());
        if !cut {
            damaged.extend_from_slice(&body[i..]);
        }
        let _ = parse_sdp(&damaged);
    }
}
