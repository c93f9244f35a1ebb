//! `isc`: a terminal client and bundled server for the OMA ISC / CPM / IM
//! service procedures. The module tree follows `STYLE.md`: a sans-IO protocol
//! core under [`proto`], thin tokio drivers under [`net`], the server roles
//! under [`server`] and the client under [`client`].

pub mod client;
pub mod config;
pub mod flow;
pub mod fuzz_targets;
pub mod ids;
pub mod logging;
pub mod media;
pub mod net;
pub mod proto;
pub mod server;
