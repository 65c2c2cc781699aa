#!/usr/bin/env bash
# Builds wakeproxy:latest, FROM scratch around a static build of the wakeproxy binary
# (docker/proxy/Dockerfile says how to run it). Nothing is pulled; safe to run again
# (it rebuilds and retags, and removes the image the tag pointed to before when nothing
# else uses it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_name=wakeproxy
image=wakeproxy
tag=latest
target=x86_64-unknown-linux-gnu

die() { echo "build-proxy-image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found in PATH"
if ! docker_error="$(docker info 2>&1 >/dev/null)"; then
    die "cannot reach the Docker daemon (${DOCKER_HOST:-unix:///var/run/docker.sock}): ${docker_error##*$'\n'}"
fi

echo "==> building $bin_name statically for $target"
# --target keeps RUSTFLAGS away from build scripts and proc macros built for the host.
# Dropping the debug info (the release profile keeps line tables) makes the binary much
# smaller; symbols stay, for backtraces.
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --bin "$bin_name" --target "$target" \
    --config 'profile.release.strip="debuginfo"')
bin="${CARGO_TARGET_DIR:-$repo/target}/$target/release/$bin_name"
[[ -x "$bin" ]] || die "build finished but $bin is missing"

# ldd says "not a dynamic executable" (static) or "statically linked" (static-pie).
ldd_out="$(ldd "$bin" 2>&1 || true)"
if ! grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    die "$bin is not statically linked; ldd says: $ldd_out"
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/$image-context.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/$bin_name"
cp "$repo/docker/proxy/Dockerfile" "$ctx/Dockerfile"

old_id="$(docker image inspect --format '{{.Id}}' "$image:$tag" 2>/dev/null || true)"

# DOCKER_BUILDKIT=0: the classic builder is always there and never looks up a registry
# for FROM scratch; quiet output prints the image id only.
echo "==> docker build -t $image:$tag"
DOCKER_BUILDKIT=0 docker build --quiet -t "$image:$tag" "$ctx" >/dev/null

# Drop the image the tag pointed to before, if now untagged and unused.
if [[ -n "$old_id" && -z "$(docker image inspect --format '{{join .RepoTags ","}}' "$old_id" 2>/dev/null)" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi

echo "==> built:"
docker image ls "$image:$tag" --format '    {{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}'
