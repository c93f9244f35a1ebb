//! Media on the endpoints: content the server streams (and, later, the player).

pub mod content;
