//! The Docker Engine API client (HTTP over the daemon's Unix socket).
