//! The bundled server: its modules are named after the spec roles.

pub mod b2bua;
pub mod content_list;
pub mod core;
pub mod cpm_participating_function;
pub mod deferred_message_store;
pub mod history_store;
pub mod im_controlling_function;
pub mod isc_media_function;
pub mod isc_playback;
pub mod kamailio;
pub mod limits;
pub mod location_service;
pub mod msrp_relay;
#[cfg(feature = "postgres")]
pub mod pg_store;
pub mod proxy_core;
pub mod proxy_dialogs;
pub mod reg_notifier;
pub mod registrar;
pub mod request_checks;
pub mod rtp_sender;
pub mod rtp_streamer;
pub mod runner;
pub mod sip_util;
pub mod tls_setup;
pub use tls_setup::tls_identity;
