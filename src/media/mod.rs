//! Media on the endpoints: content the server streams, and the player that
//! receives it (sans-IO [`player::Player`], clocks, audio sinks, video frames
//! for the TUI). The tokio driver is `net::rtp_socket`.

pub mod audio_out;
pub mod clock;
pub mod content;
pub mod import;
pub mod picture;
pub mod player;
pub mod resample;
pub mod video;
