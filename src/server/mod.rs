//! The bundled server: its modules are named after the spec roles.

pub mod location_service;
pub mod sip_util;
pub mod registrar;
