//! wakeproxy: a reverse proxy that starts Docker containers on first request and stops them when idle.
//!
//! The binary (`src/main.rs`) is a thin shell over this library so integration tests and
//! benchmarks can reach every part.
#![forbid(unsafe_code)]

pub mod config;
pub mod docker;
