#!/usr/bin/env bash
# The swarm scenario of docs/swarm.md against the local Docker daemon: turns it into a
# single-node swarm on 127.0.0.1, runs tests/swarm.rs, and leaves the swarm again in every
# case. Refuses (fails) when the daemon is in a swarm this test did not create. The logic
# lives in tests/swarm.rs, so plain `cargo test` runs the same thing; this prints its output.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --test swarm -- --nocapture "$@"
