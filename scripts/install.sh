#!/usr/bin/env bash
# Installs wakeproxy on a server as a systemd service (docs/deploy.md walks through it).
# Run as root from a checkout of the repository:
#
#   sudo scripts/install.sh --binary target/release/wakeproxy --domain example.com --email me@example.com
#
# What it does, each step only when needed (safe to run again: a second run changes nothing,
# an upgrade replaces the binary and the unit and keeps the config and the token):
#   - the binary        -> PREFIX/bin/wakeproxy (default /usr/local/bin)
#   - a system user `wakeproxy` in the `docker` group (it owns nothing but may read the config)
#   - /etc/wakeproxy/proxy.yaml from deploy/proxy.yaml.skeleton, only when absent
#   - /etc/wakeproxy/env with PROXY_BEARER_TOKEN=<64 hex digits> (openssl rand -hex 32, or
#     /dev/urandom), mode 600, only when absent
#   - /var/www/acme, the ACME http-01 webroot the proxy serves, and (unless --auto-certbot)
#     /etc/letsencrypt/renewal-hooks/deploy/wakeproxy, the deploy hook for certbot on the host
#   - /etc/systemd/system/wakeproxy.service from deploy/wakeproxy.service
# It does not enable or start the service: it prints the commands for that.
#
# Options:
#   --binary PATH    install this binary (default: build target/release/wakeproxy with cargo;
#                    under sudo cargo is usually not on PATH, so build first as yourself)
#   --domain NAME    domain for a newly written proxy.yaml (also its certificate paths)
#   --email ADDR     ACME e-mail for a newly written proxy.yaml
#   --auto-certbot   the proxy runs certbot itself: a newly written proxy.yaml gets
#                    `auto_certbot: true`, and the webroot and /etc/letsencrypt,
#                    /var/lib/letsencrypt, /var/log/letsencrypt are given to the wakeproxy user
#   --prefix DIR     install the binary to DIR/bin (default /usr/local; or PREFIX=DIR)
#   --destdir DIR    install under DIR instead of / (or DESTDIR=DIR), e.g. for packaging or a
#                    test: no root needed, no user created, no ownership changed, no systemctl
#   --no-user        do not create the wakeproxy user or change ownership (you manage them)
#   -h, --help       show this help
set -euo pipefail
umask 022

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
user=wakeproxy

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'install.sh: WARNING: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

binary=""
domain=""
email=""
auto_certbot=0
manage_user=1
prefix="${PREFIX:-/usr/local}"
destdir="${DESTDIR:-}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --binary) [[ $# -ge 2 ]] || die "--binary needs a path"; binary="$2"; shift 2 ;;
        --binary=*) binary="${1#*=}"; shift ;;
        --domain) [[ $# -ge 2 ]] || die "--domain needs a name"; domain="$2"; shift 2 ;;
        --domain=*) domain="${1#*=}"; shift ;;
        --email) [[ $# -ge 2 ]] || die "--email needs an address"; email="$2"; shift 2 ;;
        --email=*) email="${1#*=}"; shift ;;
        --prefix) [[ $# -ge 2 ]] || die "--prefix needs a directory"; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#*=}"; shift ;;
        --destdir) [[ $# -ge 2 ]] || die "--destdir needs a directory"; destdir="$2"; shift 2 ;;
        --destdir=*) destdir="${1#*=}"; shift ;;
        --auto-certbot) auto_certbot=1; shift ;;
        --no-user) manage_user=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[[ "$prefix" == /* ]] || die "--prefix must be an absolute path, got '$prefix'"
prefix="${prefix%/}"
if [[ -n "$destdir" ]]; then
    mkdir -p "$destdir" || die "cannot create --destdir $destdir"
    destdir="$(cd "$destdir" && pwd)"
    [[ "$destdir" != / ]] || destdir=""
fi
if [[ -n "$destdir" ]]; then
    manage_user=0 # a staging tree: the user and ownership belong to the real system
elif [[ $EUID -ne 0 ]]; then
    die "run as root (sudo $0 ...), or use --destdir DIR to install into a directory"
fi
if [[ -n "$domain" && ! "$domain" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    die "--domain '$domain' is not a host name"
fi
if [[ -n "$email" && ! "$email" =~ ^[^[:space:]@|\&\\]+@[A-Za-z0-9.-]+$ ]]; then
    die "--email '$email' is not an e-mail address"
fi

bin_dest="$destdir$prefix/bin/wakeproxy"
etc_dir="$destdir/etc/wakeproxy"
config="$etc_dir/proxy.yaml"
env_file="$etc_dir/env"
unit="$destdir/etc/systemd/system/wakeproxy.service"
webroot="$destdir/var/www/acme"
skeleton="$repo/deploy/proxy.yaml.skeleton"
unit_src="$repo/deploy/wakeproxy.service"
hook="$destdir/etc/letsencrypt/renewal-hooks/deploy/wakeproxy"
hook_src="$repo/deploy/certbot-deploy-hook.sh"
for f in "$skeleton" "$unit_src" "$hook_src"; do
    [[ -f "$f" ]] || die "$f is missing: run this script from a complete wakeproxy checkout"
done

if [[ ! -e "$config" && $auto_certbot -eq 1 && ( -z "$domain" || -z "$email" ) ]]; then
    die "--auto-certbot needs --domain and --email for the new proxy.yaml (certbot asks for a certificate of that domain)"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/wakeproxy-install.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# install_file SRC DEST MODE: puts SRC at DEST (atomically, by rename) unless DEST already has
# the same content; says which. Sets `changed`.
install_file() {
    local src="$1" dest="$2" mode="$3"
    changed=0
    if [[ -f "$dest" ]] && cmp -s "$src" "$dest"; then
        note "unchanged: ${dest}"
        return
    fi
    local what=installed
    [[ -e "$dest" ]] && what=updated
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$src" "$dest.new.$$"
    mv -f "$dest.new.$$" "$dest"
    changed=1
    note "$what: $dest"
}

# --- the binary --------------------------------------------------------------------------
say "binary"
if [[ -z "$binary" ]]; then
    command -v cargo >/dev/null 2>&1 || die "no --binary given and cargo is not on PATH (sudo drops ~/.cargo/bin): build as yourself with 'cargo build --release --locked', then run: sudo $0 --binary target/release/wakeproxy"
    note "building target/release/wakeproxy (cargo build --release --locked)"
    (cd "$repo" && cargo build --release --locked --bin wakeproxy) || die "cargo build failed"
    binary="${CARGO_TARGET_DIR:-$repo/target}/release/wakeproxy"
fi
[[ -f "$binary" && -x "$binary" ]] || die "$binary is not an executable file"
version="$("$binary" --version 2>&1)" || die "'$binary --version' failed: not a working wakeproxy binary: $version"
[[ "$version" == wakeproxy\ * ]] || die "$binary does not look like wakeproxy ('--version' printed '$version')"
install_file "$binary" "$bin_dest" 0755
binary_changed=$changed
note "$version"

# --- user and group ----------------------------------------------------------------------
say "user"
if [[ $manage_user -eq 1 ]]; then
    if getent passwd "$user" >/dev/null; then
        note "unchanged: system user $user exists"
    else
        nologin=/usr/sbin/nologin
        [[ -x $nologin ]] || nologin=/sbin/nologin
        [[ -x $nologin ]] || nologin=/bin/false
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell "$nologin" --comment "wakeproxy reverse proxy" "$user"
        note "created: system user $user"
    fi
    if getent group docker >/dev/null; then
        if id -nG "$user" | tr ' ' '\n' | grep -qx docker; then
            note "unchanged: $user is in the docker group"
        else
            usermod -aG docker "$user"
            note "added: $user to the docker group (access to /var/run/docker.sock)"
        fi
    else
        warn "there is no 'docker' group: install Docker first. The unit runs with SupplementaryGroups=docker and will not start without that group; run this script again afterwards."
    fi
else
    note "skipped (${destdir:+--destdir }${destdir:---no-user}): no user created, no ownership changed"
fi

# Directory DIR with MODE, and OWNER (user:group) when we manage ownership; only what differs.
ensure_dir() {
    local dir="$1" mode="$2" owner="${3:-}"
    if [[ ! -d "$dir" ]]; then
        mkdir -p "$dir"
        chmod "$mode" "$dir"
        [[ $manage_user -eq 1 && -n "$owner" ]] && chown "$owner" "$dir"
        note "created: $dir"
        return 0
    fi
    local fixed=""
    if [[ "$(stat -c %a "$dir")" != "${mode#0}" ]]; then
        chmod "$mode" "$dir"
        fixed="mode $mode"
    fi
    if [[ $manage_user -eq 1 && -n "$owner" && "$(stat -c %U:%G "$dir")" != "$owner" ]]; then
        chown "$owner" "$dir"
        fixed="${fixed:+$fixed, }owner $owner"
    fi
    if [[ -n "$fixed" ]]; then
        note "fixed ($fixed): $dir"
    else
        note "unchanged: $dir"
    fi
}

# --- configuration -----------------------------------------------------------------------
say "configuration"
ensure_dir "$etc_dir" 0750 "root:$user"
if [[ -e "$config" ]]; then
    note "kept: $config (never overwritten)"
    [[ -z "$domain$email" ]] || note "--domain and --email only go into a new proxy.yaml: edit the existing one yourself"
    if [[ $auto_certbot -eq 1 ]] && ! grep -Eq '^[[:space:]]*auto_certbot:[[:space:]]*true' "$config"; then
        warn "$config does not say 'auto_certbot: true': set it there for the proxy to run certbot"
    fi
else
    sed_args=()
    if [[ -n "$domain" ]]; then
        sed_args+=(-e "s|^\(  domain:\) example\.com|\1 $domain|"
                   -e "s|/etc/letsencrypt/live/example\.com/|/etc/letsencrypt/live/$domain/|")
    fi
    [[ -z "$email" ]] || sed_args+=(-e "s|^\(  email:\) admin@example\.com|\1 $email|")
    [[ $auto_certbot -eq 0 ]] || sed_args+=(-e "s|^\(  auto_certbot:\) false|\1 true|")
    if [[ ${#sed_args[@]} -gt 0 ]]; then
        sed "${sed_args[@]}" "$skeleton" >"$tmp/proxy.yaml"
    else
        cp "$skeleton" "$tmp/proxy.yaml"
    fi
    install -m 0640 "$tmp/proxy.yaml" "$config.new.$$"
    [[ $manage_user -eq 0 ]] || chown "root:$user" "$config.new.$$"
    mv -f "$config.new.$$" "$config"
    note "written: $config (from deploy/proxy.yaml.skeleton${domain:+, domain $domain}): edit its services"
    [[ -n "$domain" ]] || note "its domain is still example.com: set yours (and the tls_* paths)"
fi

# --- the token ---------------------------------------------------------------------------
say "token"
if [[ -e "$env_file" ]]; then
    note "kept: $env_file (the existing token stays valid)"
    if [[ "$(stat -c %a "$env_file")" != 600 ]]; then
        chmod 600 "$env_file"
        note "fixed: $env_file was readable by others, now mode 600"
    fi
    grep -q '^PROXY_BEARER_TOKEN=.\{32,\}' "$env_file" ||
        warn "$env_file has no PROXY_BEARER_TOKEN=<at least 32 characters> line: proxy.yaml reads the token from it"
else
    if command -v openssl >/dev/null 2>&1; then
        token="$(openssl rand -hex 32)"
        source_name="openssl rand -hex 32"
    else
        token="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
        source_name="/dev/urandom"
    fi
    [[ "$token" =~ ^[0-9a-f]{64}$ ]] || die "could not generate a token with $source_name"
    (
        umask 077
        printf '# wakeproxy environment (systemd EnvironmentFile, also docker --env-file): keep it secret.\nPROXY_BEARER_TOKEN=%s\n' \
            "$token" >"$env_file.new.$$"
    )
    [[ $manage_user -eq 0 ]] || chown root:root "$env_file.new.$$"
    mv -f "$env_file.new.$$" "$env_file"
    unset token
    note "generated: $env_file (PROXY_BEARER_TOKEN from $source_name, mode 600)"
fi

# --- ACME webroot and certbot's directories ------------------------------------------------
say "certificates"
if [[ $auto_certbot -eq 1 ]]; then
    ensure_dir "$webroot" 0755 "$user:$user"
    for d in /etc/letsencrypt /var/lib/letsencrypt /var/log/letsencrypt; do
        ensure_dir "$destdir$d" 0755 "$user:$user"
        if [[ $manage_user -eq 1 && -n "$(find "$destdir$d" ! -user "$user" -print -quit)" ]]; then
            chown -R "$user:$user" "$destdir$d"
            note "fixed: everything under $d now belongs to $user (certbot runs as $user)"
        fi
    done
    command -v certbot >/dev/null 2>&1 || warn "certbot is not installed: apt-get install certbot (auto_certbot runs it)"
else
    # certbot on the host (docs/deploy.md) writes the challenge files as root; the proxy
    # serves them. Its deploy hook lets the wakeproxy group read the certificates and
    # reloads the proxy after each renewal.
    ensure_dir "$webroot" 0755
    install_file "$hook_src" "$hook" 0755
    note "certbot on the host: certbot certonly --webroot -w /var/www/acme -d ${domain:-<domain>} --deploy-hook ${hook#"$destdir"}"
fi

# --- systemd unit ------------------------------------------------------------------------
say "systemd unit"
sed "s|^ExecStart=/usr/local/bin/wakeproxy |ExecStart=$prefix/bin/wakeproxy |" "$unit_src" >"$tmp/wakeproxy.service"
install_file "$tmp/wakeproxy.service" "$unit" 0644
unit_changed=$changed
systemd_running=0
[[ -z "$destdir" && -d /run/systemd/system ]] && systemd_running=1
if [[ $unit_changed -eq 1 && $systemd_running -eq 1 ]]; then
    systemctl daemon-reload
    note "systemctl daemon-reload done"
fi

# --- check ---------------------------------------------------------------------------------
say "check"
# The environment as systemd gives it (simple KEY=value lines), then the installed binary.
config_valid=1
# shellcheck source=/dev/null
if check_out="$( (set -a; . "$env_file"; set +a; "$bin_dest" proxy-validate-config --config "$config") 2>&1)"; then
    note "proxy-validate-config: $(tail -n 1 <<<"$check_out")"
else
    config_valid=0
    warn "$config does not validate yet; fix it before starting the service:"
    while IFS= read -r line; do printf '    %s\n' "$line" >&2; done <<<"$check_out"
fi

# --- next steps ----------------------------------------------------------------------------
active=0
if [[ $systemd_running -eq 1 ]] && systemctl is-active --quiet wakeproxy 2>/dev/null; then
    active=1
fi
say "done"
if [[ $active -eq 1 ]]; then
    if [[ $config_valid -eq 0 ]]; then
        note "wakeproxy is running; do not restart it before $config validates"
    elif [[ $binary_changed -eq 1 || $unit_changed -eq 1 ]]; then
        note "wakeproxy is running the old version: systemctl restart wakeproxy"
    else
        note "wakeproxy is running; nothing to restart"
    fi
else
    cat <<EOF
Next steps:
  1. Edit ${config#"$destdir"} (services, domain), then check it:
       sudo sh -c 'set -a; . /etc/wakeproxy/env; $prefix/bin/wakeproxy proxy-validate-config --config /etc/wakeproxy/proxy.yaml'
  2. Start it now and at boot:
       sudo systemctl enable --now wakeproxy
  3. Watch it:
       journalctl -u wakeproxy -f
       sudo sh -c '. /etc/wakeproxy/env; $prefix/bin/wakeproxy proxy-status --server-url http://127.0.0.1 --bearer-token "\$PROXY_BEARER_TOKEN"'
     (plain HTTP only: once HTTPS is on, fetch https://<your domain>/proxy/status with curl
      and the same Authorization header)
  Clients send: Authorization: Bearer <the token in /etc/wakeproxy/env>
EOF
fi
