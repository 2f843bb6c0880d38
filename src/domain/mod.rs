//! Rules and value types with no I/O: secrets, passwords, users.

pub mod app;
pub mod password;
pub mod pkce;
pub mod scope;
pub mod secret;
pub mod user;
