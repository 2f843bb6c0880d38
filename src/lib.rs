//! latchkey: a self-hosted OAuth 2.1 / OpenID Connect provider with an OAuth Apps platform.

pub mod api;
pub mod app;
pub mod apps;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod i18n;
pub mod oauth;
pub mod ops;
pub mod outbox;
pub mod store;
pub mod web;
