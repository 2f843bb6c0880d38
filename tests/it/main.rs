//! Black-box tests: the real app on a random loopback port with a fresh database, driven over
//! HTTP. Each test runs on SQLite, and on PostgreSQL when `LATCHKEY_TEST_POSTGRES_URL` is set.

mod helpers;
mod limits;
mod logout;

mod accounts;
mod activity;
mod apps_pages;
mod attacks;
mod cli;
mod clients;
mod concurrency;
mod crash;
mod device;
mod docs;
mod dpop;
mod exchange;
mod malformed;
mod nodes;
mod oauth;
mod oauth_helpers;
mod oidc_client;
mod openapi;
mod ops;
mod pages;
mod par;
mod pool;
mod process;
mod registration;
mod resources;
mod settings;
mod setup;
mod store;
mod wakatime_cli;
mod webhooks;
