//! Configuration: one TOML schema for client and server.
