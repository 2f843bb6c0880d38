//! Rules and value types with no I/O: secrets, passwords, users.

pub mod activity;
pub mod app;
pub mod device;
pub mod password;
pub mod pkce;
pub mod resource;
pub mod scope;
pub mod seal;
pub mod secret;
pub mod user;
