//! Rules and value types with no I/O: secrets, passwords, users.

pub mod password;
pub mod secret;
pub mod user;
