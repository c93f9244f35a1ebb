//! The shipped content under assets/content loads and matches its metadata.

use std::path::Path;
use std::time::Duration;

use isc::media::content::{
    AUDIO_SAMPLE_RATE, Content, ContentError, list, read_metadata, split_mjpeg,
};
use isc::proto::rtp::jpeg::{JpegDepacketizer, JpegPacketizer, split_jpeg};
use isc::proto::rtp::jpeg_codec::decode_rgb;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/content"))
}

#[test]
fn shipped_content_is_listed_and_small() {
    let pieces = list(root()).unwrap();
    let ids: Vec<&str> = pieces.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["melody", "test-card"]);
    let mut total = 0;
    for p in &pieces {
        for f in std::fs::read_dir(&p.dir).unwrap() {
            total += f.unwrap().metadata().unwrap().len();
        }
    }
    assert!(total < 5 * 1024 * 1024, "{total} bytes");
}

#[test]
fn every_piece_loads_and_matches_its_metadata() {
    for info in list(root()).unwrap() {
        let meta = read_metadata(&info.dir).unwrap();
        let c = Content::load(&info.dir).unwrap();
        assert_eq!(
            (c.id.as_str(), c.title.as_str()),
            (info.id.as_str(), info.title.as_str())
        );
        assert_eq!(c.duration, Duration::from_millis(meta.duration_ms));
        assert!(
            (10..=20).contains(&c.duration.as_secs()),
            "{}: {:?}",
            c.id,
            c.duration
        );
        assert_eq!(c.audio.sample_rate, AUDIO_SAMPLE_RATE);
        assert_eq!(c.audio.samples.len() as u64, meta.duration_ms * 8);
        assert!(
            c.audio.samples.iter().any(|&s| s.unsigned_abs() > 8000),
            "{}: audible",
            c.id
        );
        let v = c.video.as_ref().unwrap();
        let vm = meta.video.as_ref().unwrap();
        assert_eq!((v.width, v.height, v.fps), (vm.width, vm.height, vm.fps));
        assert_eq!(
            v.frames.len() as u64,
            meta.duration_ms * u64::from(vm.fps) / 1000
        );
        for (i, frame) in v.frames.iter().enumerate() {
            assert_eq!(
                frame.rgb.len(),
                usize::from(v.width) * usize::from(v.height) * 3
            );
            // each stored frame is sendable as RFC 2435 type 1 as it is
            let parts =
                split_jpeg(&frame.jpeg).unwrap_or_else(|e| panic!("{} frame {i}: {e}", c.id));
            assert_eq!(parts.jpeg_type, 1);
        }
    }
}

#[test]
fn a_stored_frame_goes_through_rtp_unchanged() {
    let c = Content::load(&root().join("test-card")).unwrap();
    let frame = &c.video.unwrap().frames[37];
    let packets = JpegPacketizer::new(9, 0, 1200)
        .packetize(&frame.jpeg, 37 * 9000)
        .unwrap();
    let mut d = JpegDepacketizer::new();
    let got = packets.iter().find_map(|p| d.push(p).unwrap()).unwrap();
    assert_eq!(decode_rgb(&got.jpeg).unwrap().data, frame.rgb);
}

#[test]
fn load_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let piece = dir.path().join("x");
    std::fs::create_dir(&piece).unwrap();
    assert!(matches!(
        Content::load(&piece),
        Err(ContentError::Io { .. })
    ));
    std::fs::write(piece.join("content.toml"), "id = \"x\"\n").unwrap();
    assert!(matches!(
        Content::load(&piece),
        Err(ContentError::Metadata { .. })
    ));
    // metadata promising 5 s over 12 s of audio
    let src = root().join("melody");
    std::fs::copy(src.join("audio.wav"), piece.join("audio.wav")).unwrap();
    std::fs::write(
        piece.join("content.toml"),
        "id = \"x\"\ntitle = \"X\"\nduration_ms = 5000\n[audio]\nfile = \"audio.wav\"\n",
    )
    .unwrap();
    let err = Content::load(&piece).unwrap_err();
    assert!(
        matches!(err, ContentError::DurationMismatch { track: "audio", .. }),
        "{err}"
    );
    std::fs::write(
        piece.join("content.toml"),
        "id = \"y\"\ntitle = \"X\"\nduration_ms = 12000\n[audio]\nfile = \"audio.wav\"\n",
    )
    .unwrap();
    assert!(matches!(
        Content::load(&piece),
        Err(ContentError::IdMismatch { .. })
    ));
    std::fs::write(
        piece.join("content.toml"),
        "id = \"x\"\ntitle = \"X\"\nduration_ms = 12000\n[audio]\nfile = \"audio.wav\"\n",
    )
    .unwrap();
    let c = Content::load(&piece).unwrap();
    assert!(c.video.is_none());
}

#[test]
fn mjpeg_splitting() {
    let bytes = std::fs::read(root().join("melody/video.mjpeg")).unwrap();
    assert_eq!(split_mjpeg(&bytes).unwrap().len(), 120);
    assert!(split_mjpeg(&bytes[..bytes.len() - 1]).is_err());
    assert!(split_mjpeg(b"junk").is_err());
}
