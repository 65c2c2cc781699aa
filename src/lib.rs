//! wakeproxy: a reverse proxy that starts Docker containers on first request and stops them when idle.
//!
//! The binary (`src/main.rs`) is a thin shell over this library so integration tests and
//! benchmarks can reach every part.
#![forbid(unsafe_code)]

pub mod acme;
pub mod activity;
pub mod answer;
pub mod auth;
pub mod certbot;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod docker;
pub mod drain;
pub mod forward;
pub mod http;
pub mod lifecycle;
pub mod login;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod redirect;
pub mod route;
pub mod server;
pub mod status;
pub mod tls;
pub mod tunnel;
pub mod workers;
