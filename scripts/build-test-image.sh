#!/usr/bin/env bash
# Builds the wakeproxy test backend images from a static build of the
# wakeproxy-testbackend binary:
#   wakeproxy-testbackend:latest       FROM scratch, no HEALTHCHECK
#   wakeproxy-testbackend:healthcheck  the same plus a 1 s HEALTHCHECK (--check)
# Nothing is pulled; safe to run again (it rebuilds and retags, and removes the
# images the tags pointed to before when nothing else uses them).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image=wakeproxy-testbackend
target=x86_64-unknown-linux-gnu

die() { echo "build-test-image: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker CLI not found in PATH"
if ! docker_error="$(docker info 2>&1 >/dev/null)"; then
    die "cannot reach the Docker daemon (${DOCKER_HOST:-unix:///var/run/docker.sock}): ${docker_error##*$'\n'}"
fi

echo "==> building $image statically for $target"
# --target keeps RUSTFLAGS away from build scripts and proc macros built for the host.
# Dropping the debug info (the release profile keeps line tables) takes the binary from
# about 6 MB to under 2 MB; symbols stay, for backtraces.
# The binary is the workspace member testbackend/ (package wakeproxy-testbackend).
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p "$image" --bin "$image" --target "$target" \
    --config 'profile.release.strip="debuginfo"')
bin="${CARGO_TARGET_DIR:-$repo/target}/$target/release/$image"
[[ -x "$bin" ]] || die "build finished but $bin is missing"

# ldd says "not a dynamic executable" (static) or "statically linked" (static-pie).
ldd_out="$(ldd "$bin" 2>&1 || true)"
if ! grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_out"; then
    die "$bin is not statically linked; ldd says: $ldd_out"
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/$image-context.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/$image"
cp "$repo/docker/testbackend/Dockerfile" "$ctx/Dockerfile"

old_ids=()
for tag in healthcheck latest; do
    if id="$(docker image inspect --format '{{.Id}}' "$image:$tag" 2>/dev/null)"; then
        old_ids+=("$id")
    fi
done

# DOCKER_BUILDKIT=0: the classic builder is always there and never looks up a registry
# for FROM scratch; quiet output prints the image id only.
build() {
    local stage="$1" tag="$2"
    echo "==> docker build --target $stage -t $image:$tag"
    DOCKER_BUILDKIT=0 docker build --quiet --target "$stage" -t "$image:$tag" "$ctx" >/dev/null
}
build plain latest
build healthcheck healthcheck

# Drop images the tags pointed to before, if now untagged and unused (child first).
for id in "${old_ids[@]}"; do
    if [[ -z "$(docker image inspect --format '{{join .RepoTags ","}}' "$id" 2>/dev/null)" ]]; then
        docker image rm "$id" >/dev/null 2>&1 || true
    fi
done

echo "==> built:"
docker image ls "$image" --format '    {{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}'
