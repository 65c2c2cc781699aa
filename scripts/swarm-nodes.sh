#!/usr/bin/env bash
# swarm-nodes.sh: a real two-node Docker swarm on this one machine, for integration tests.
#
#   node 1 (manager): the system Docker daemon (/var/run/docker.sock), advertising 10.213.213.1
#   node 2 (worker):  a second dockerd, with its own containerd, data-root and exec-root, in the
#                     network namespace wpswarm-n2 (10.213.213.2) and its own UTS namespace
#                     (hostname wpswarm-n2), joined to the manager over the veth pair
#                     wpsw-h (host side) / wpsw-n (namespace side).
#   registry:         docker-registry (Debian package) over TLS on 10.213.213.1:5000, its
#                     self-signed CA in /etc/docker/certs.d/10.213.213.1:5000/ca.crt, so both
#                     daemons push and pull without being reconfigured or restarted.
#
# Everything it creates lives under /var/lib/wakeproxy-swarm-nodes (engine data and exec-root,
# socket, logs, registry data and TLS files, the env file) plus the netns, the veth pair, the
# certs.d entry, the cgroup /wakeproxy-swarm-n2 of node 2's containers, and the swarm itself,
# marked by the node label wakeproxy.swarm-nodes=1 on the manager. Root only; the system daemon
# must not be in a swarm this script did not create (it refuses then, and leaves it alone).
# Traffic stays on this machine: loopback, the veth pair and Docker's own networks.
#
# Usage:
#   swarm-nodes.sh up           build it (cleans leftovers of an earlier run first), then print
#                               KEY=value lines on stdout (also in /var/lib/wakeproxy-swarm-nodes/env)
#   swarm-nodes.sh down         remove everything (also after a failed `up` or `kill-node2`);
#                               idempotent; exits non-zero if something could not be removed
#   swarm-nodes.sh leftovers    print what is left, one per line; exit 1 if anything, else 0
#   swarm-nodes.sh kill-node2   SIGKILL node 2 (engine, its containerd, shims, containers)
#   swarm-nodes.sh docker2 ARGS...  docker -H <node 2 socket> ARGS
#   swarm-nodes.sh env          print the KEY=value lines of the current `up` again
#
# How a test uses it: run `up` and read its stdout (NODE2_DOCKER_HOST, NODE2_ADDR, MANAGER_ADDR,
# REGISTRY, NODE2_HOSTNAME, ...); push images to $REGISTRY from the system daemon and create
# services by their registry name (node 2 pulls them from there); use the manager's API for
# services (workers cannot manage them: a proxy on node 2 bind-mounts the host's
# /var/run/docker.sock, which is the manager's); `kill-node2` to lose node 2; always `down` at the
# end, then `leftovers` must exit 0. Log lines go to stderr, prefixed "swarm-nodes:".
# The kernel may lack IPVS: use --endpoint-mode dnsrr for services.
set -Eeuo pipefail

readonly NETNS=wpswarm-n2
readonly VETH_HOST=wpsw-h
readonly VETH_NS=wpsw-n
readonly NET_PREFIX=10.213.213
readonly MANAGER_ADDR=$NET_PREFIX.1
readonly NODE2_ADDR=$NET_PREFIX.2
readonly NET_CIDR=$NET_PREFIX.0/24
# Local networks of node 2 (its docker_gwbridge and bridge networks), so that they do not
# look like the host's docker0 172.17.0.0/16.
readonly NODE2_POOL=10.213.216.0/21
readonly STATE=/var/lib/wakeproxy-swarm-nodes
readonly RECORD=$STATE/record
readonly NODE2_SOCK=$STATE/docker.sock
readonly NODE2_LOG=$STATE/dockerd.log
readonly NODE2_CONTAINERD_SOCK=$STATE/exec/containerd/containerd.sock
readonly REGISTRY=$MANAGER_ADDR:5000
readonly REGISTRY_CONFIG=$STATE/registry/config.yml
readonly REGISTRY_LOG=$STATE/registry.log
readonly CERTS_D=/etc/docker/certs.d/$REGISTRY
readonly CGROUP_PARENT=wakeproxy-swarm-n2
readonly LABEL=wakeproxy.swarm-nodes
readonly SHIM_SOCKET_DIR=/run/containerd/s
# Deadlines, in seconds.
readonly ENGINE_TIMEOUT=60 REGISTRY_TIMEOUT=20 READY_TIMEOUT=60 STOP_TIMEOUT=20

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
readonly SELF
CMD="${1:-}"
SWARM_WHY=
TOUCHED=0 # up: set once it starts changing things

log() { printf 'swarm-nodes: %s\n' "$*" >&2; }

fail() {
    trap - ERR
    log "FAILED: $*"
    if [[ $CMD == up && -s $NODE2_LOG ]]; then
        log "last lines of $NODE2_LOG (without grpc chatter):"
        grep -v 'module=grpc' "$NODE2_LOG" | tail -n 20 | sed 's/^/swarm-nodes: | /' >&2
    fi
    if [[ $CMD == up && $TOUCHED == 1 ]]; then
        log "run '$SELF down' to remove what was set up"
    fi
    exit 1
}
trap 'fail "line $LINENO: command failed: $BASH_COMMAND"' ERR

usage() {
    sed -n '/^# Usage:/,/^# How a test/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# run CMD...: runs it quietly; on failure logs its output and fails.
run() {
    local out
    if ! out=$("$@" 2>&1); then
        fail "'$*' failed: $out"
    fi
}

# wait_for DESCRIPTION SECONDS CMD...: polls CMD until it succeeds; fails at the deadline.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            fail "timed out after ${secs}s waiting for $what"
        fi
        sleep 0.2
    done
}

docker1() { docker -H unix:///var/run/docker.sock "$@"; }
docker2() { docker -H "unix://$NODE2_SOCK" "$@"; }

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || fail "$tool not found in PATH${hint[$tool]:+ (${hint[$tool]})}"
    done
}
declare -A hint=([docker-registry]="apt-get install -y docker-registry")

# ---------------------------------------------------------------- inspection helpers

netns_exists() { [[ -e /run/netns/$NETNS ]]; }

# Pids of node 2: every process in its network namespace (engine, containerd, shims,
# docker-proxy, anything a test ran there), every process in its containers' cgroup, and
# engine/containerd/shim/registry processes whose command line names the state directory.
# With "node2" as $1 the registry is left out.
our_pids() {
    local which=${1:-all} pid cmdline comm f
    local -A seen=()
    if netns_exists; then
        for pid in $(ip netns pids "$NETNS" 2>/dev/null); do seen[$pid]=1; done
    fi
    for f in /proc/[0-9]*; do
        read -r comm 2>/dev/null <"$f/comm" || continue
        case $comm in
        dockerd | containerd | containerd-shim* | docker-proxy | docker-registry | fuse-overlayfs)
            cmdline=$(tr '\0' ' ' 2>/dev/null <"$f/cmdline") || continue
            if [[ $cmdline == *"$STATE/"* ]]; then
                [[ $which == node2 && $cmdline == *"$REGISTRY_CONFIG"* ]] && continue
                seen[${f#/proc/}]=1
            fi
            ;;
        esac
    done
    for f in $(cgroup_dirs); do
        while read -r pid; do
            [[ -n $pid ]] && seen[$pid]=1
        done 2>/dev/null <"$f/cgroup.procs" || true
    done
    if ((${#seen[@]})); then
        printf '%s\n' "${!seen[@]}" | sort -n
    fi
}

# Cgroup directories of node 2's containers, deepest first (cgroup v1 and v2 layouts).
cgroup_dirs() {
    local d
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
        if [[ -d $d ]]; then find "$d" -depth -type d 2>/dev/null || true; fi
    done
    return 0
}

# Mount points under the state directory, deepest first.
our_mounts() {
    awk -v s="$STATE" '$5 == s || index($5, s "/") == 1 { print $5 }' /proc/self/mountinfo | sort -ru
}

# Shim sockets of node 2's containers: containerd 1.6 puts them in /run/containerd/s/ named
# sha256(<containerd address>/<namespace>/<id>); a SIGKILLed shim leaves its socket behind.
our_shim_sockets() {
    local id sock
    local -A ids=()
    for id in "$STATE"/data/containers/* "$STATE"/exec/containerd/daemon/io.containerd.runtime.v2.task/moby/*; do
        [[ -e $id ]] && ids[${id##*/}]=1
    done
    for id in "${!ids[@]}"; do
        sock=$SHIM_SOCKET_DIR/$(printf '%s' "$NODE2_CONTAINERD_SOCK/moby/$id" | sha256sum | cut -d' ' -f1)
        [[ -e $sock ]] && echo "$sock"
    done
    return 0
}

system_swarm_state() { docker1 info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }

# Is the system daemon in the swarm that this script created? By the manager node's label, or,
# if `up` stopped between `swarm init` and labelling, by what it recorded before and after init.
swarm_is_ours() {
    local state label node_id created started
    state=$(system_swarm_state) || return 1
    [[ $state == inactive || -z $state ]] && return 1
    label=$(docker1 node inspect self --format "{{index .Spec.Labels \"$LABEL\"}}" 2>/dev/null) || label=
    SWARM_WHY="its node carries the label $LABEL=1"
    [[ $label == 1 ]] && return 0
    node_id=$(docker1 info --format '{{.Swarm.NodeID}}' 2>/dev/null) || return 1
    if [[ -s $RECORD/swarm-node-id ]]; then
        SWARM_WHY="its node id was recorded by up"
        [[ $(cat "$RECORD/swarm-node-id") == "$node_id" ]]
        return
    fi
    if [[ -s $RECORD/swarm-init-started ]]; then
        created=$(docker1 node inspect self --format '{{.CreatedAt.Unix}}' 2>/dev/null) || return 1
        started=$(cat "$RECORD/swarm-init-started")
        SWARM_WHY="up was running 'swarm init' when it was created"
        ((created >= started - 1))
        return
    fi
    return 1
}

# Did `up` create the system daemon's docker_gwbridge? (Recorded before `swarm init`.)
gwbridge_is_ours() {
    [[ -f $RECORD/gwbridge-existed && $(cat "$RECORD/gwbridge-existed") == 0 ]] &&
        docker1 network inspect docker_gwbridge >/dev/null 2>&1
}

# ---------------------------------------------------------------- leftovers

# Prints each leftover on one line.
list_leftovers() {
    local pid mp d s
    netns_exists && echo "netns $NETNS"
    ip link show "$VETH_HOST" >/dev/null 2>&1 && echo "link $VETH_HOST"
    ip link show "$VETH_NS" >/dev/null 2>&1 && echo "link $VETH_NS (in the host namespace)"
    while read -r pid; do
        [[ -n $pid ]] || continue
        echo "process $pid $(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-160)"
    done < <(our_pids)
    while read -r mp; do
        [[ -n $mp ]] && echo "mount $mp"
    done < <(our_mounts)
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
        [[ -d $d ]] && echo "cgroup $d ($(find "$d" -mindepth 1 -type d | wc -l) below)"
    done
    for s in $(our_shim_sockets); do echo "socket $s"; done
    [[ -e $CERTS_D ]] && echo "certs.d $CERTS_D"
    if ! docker1 info >/dev/null 2>&1; then
        echo "unknown: the system daemon does not answer (swarm and docker_gwbridge not checked)"
    else
        swarm_is_ours && echo "swarm: the system daemon is in the swarm-nodes swarm (node $(docker1 info --format '{{.Swarm.NodeID}}'): $SWARM_WHY)"
        gwbridge_is_ours && echo "gwbridge docker_gwbridge on the system daemon (created by the swarm-nodes swarm)"
    fi
    [[ -e $STATE ]] && echo "statedir $STATE"
    return 0
}

cmd_leftovers() {
    local out
    out=$(list_leftovers)
    if [[ -n $out ]]; then
        printf '%s\n' "$out"
        exit 1
    fi
    exit 0
}

# ---------------------------------------------------------------- down

# SIGKILLs node 2's processes (not the registry) and waits until they are gone.
kill_node2_processes() {
    local pids deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        mapfile -t pids < <(our_pids node2)
        ((${#pids[@]})) || return 0
        if ((SECONDS >= deadline)); then
            log "still running after SIGKILL: ${pids[*]}"
            return 1
        fi
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.2
    done
}

# Stops the registry process (by the pid file, or by its config path on the command line).
stop_registry() {
    local pid f cmdline deadline=$((SECONDS + STOP_TIMEOUT))
    local -a pids=()
    for f in /proc/[0-9]*; do
        [[ $(cat "$f/comm" 2>/dev/null) == docker-registry || $(cat "$f/comm" 2>/dev/null) == registry ]] || continue
        cmdline=$(tr '\0' ' ' 2>/dev/null <"$f/cmdline") || continue
        [[ $cmdline == *"$REGISTRY_CONFIG"* ]] && pids+=("${f#/proc/}")
    done
    ((${#pids[@]})) || return 0
    log "stopping the registry (pid ${pids[*]})"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                kill -KILL "$pid" 2>/dev/null || true
            fi
            sleep 0.1
        done
    done
}

# Removes node 2's containers and stops its engine cleanly if it answers; then SIGKILLs
# whatever of node 2 is left.
stop_node2() {
    local pid ids deadline
    if [[ -S $NODE2_SOCK ]] && timeout 10 docker -H "unix://$NODE2_SOCK" version >/dev/null 2>&1; then
        if [[ $(timeout 10 docker -H "unix://$NODE2_SOCK" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null) != inactive ]]; then
            log "node 2 leaves the swarm"
            timeout 30 docker -H "unix://$NODE2_SOCK" swarm leave --force >/dev/null 2>&1 ||
                log "node 2 'swarm leave --force' failed (going on)"
        fi
        ids=$(timeout 10 docker -H "unix://$NODE2_SOCK" ps -aq 2>/dev/null) || ids=
        if [[ -n $ids ]]; then
            log "removing node 2's containers"
            # shellcheck disable=SC2086 # one id per word
            timeout 60 docker -H "unix://$NODE2_SOCK" rm -f $ids >/dev/null 2>&1 || log "removing node 2's containers failed (going on)"
        fi
    fi
    pid=$(cat "$STATE/dockerd.pid" 2>/dev/null) || pid=
    if [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "--exec-root $STATE/exec"; then
        log "stopping node 2's engine (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_TIMEOUT))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    fi
    if [[ -n $(our_pids node2) ]]; then
        log "killing what is left of node 2: $(our_pids node2 | tr '\n' ' ')"
    fi
    kill_node2_processes
}

unmount_all() {
    local mp pass
    local -a mps
    for pass in 1 2 3 4 5; do
        mapfile -t mps < <(our_mounts)
        ((${#mps[@]})) || return 0
        [[ $pass == 1 ]] && log "unmounting ${#mps[@]} mount(s) under $STATE"
        for mp in "${mps[@]}"; do
            umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
        done
    done
    [[ -z $(our_mounts) ]]
}

remove_cgroups() {
    local d deadline=$((SECONDS + 10))
    while [[ -n $(cgroup_dirs) ]]; do
        for d in $(cgroup_dirs); do rmdir "$d" 2>/dev/null || true; done
        [[ -z $(cgroup_dirs) ]] && break
        if ((SECONDS >= deadline)); then
            log "cannot remove cgroups: $(cgroup_dirs | tr '\n' ' ')"
            return 1
        fi
        sleep 0.2
    done
}

# Removes the system daemon's docker_gwbridge if the swarm-nodes swarm created it.
remove_gwbridge() {
    local n deadline=$((SECONDS + 10))
    gwbridge_is_ours || return 0
    # After `swarm leave` the ingress sandbox may take a moment to go.
    while n=$(docker1 network inspect docker_gwbridge --format '{{len .Containers}}' 2>/dev/null) && [[ $n != 0 ]]; do
        if ((SECONDS >= deadline)); then
            log "docker_gwbridge (created by the swarm) still has containers attached, not removing it: $(docker1 network inspect docker_gwbridge --format '{{range .Containers}}{{.Name}} {{end}}')"
            return 1
        fi
        sleep 0.2
    done
    log "removing docker_gwbridge from the system daemon (the swarm created it)"
    docker1 network rm docker_gwbridge >/dev/null 2>&1 || {
        log "'docker network rm docker_gwbridge' failed"
        return 1
    }
}

# Containers on the system daemon (not swarm tasks) attached to overlay networks: `swarm leave`
# detaches them, they stay. Whoever ran them removes them; `down` only names them.
overlay_containers() {
    local net
    for net in $(docker1 network ls --filter driver=overlay --format '{{.ID}}' 2>/dev/null); do
        docker1 ps -a --filter "network=$net" --format '{{.Names}} {{.Label "com.docker.swarm.task.id"}}' 2>/dev/null
    done | awk '$2 == "" { print $1 }' | sort -u | tr '\n' ' '
}

# Running containers on the system daemon's user-defined local networks: on Engine 20.10,
# `swarm leave` drops their embedded-DNS records (moby#45144).
user_network_containers() {
    local net
    for net in $(docker1 network ls --filter scope=local --format '{{.Name}}' 2>/dev/null); do
        [[ $net == bridge || $net == host || $net == none || $net == docker_gwbridge ]] && continue
        docker1 ps --filter "network=$net" --format '{{.Names}}' 2>/dev/null
    done | sort -u | tr '\n' ' '
}

cmd_down() {
    local ok=1 state sock
    [[ $EUID == 0 ]] || fail "must run as root"

    # The swarm: node 2 leaves (if it answers), then the manager, if the swarm is ours.
    stop_node2 || ok=0
    if docker1 info >/dev/null 2>&1; then
        state=$(system_swarm_state)
        if [[ $state != inactive ]]; then
            if swarm_is_ours; then
                local others
                others=$(overlay_containers)
                if [[ -n ${others// /} ]]; then
                    log "warning: containers on the system daemon attached to overlay networks (left alone; 'swarm leave' detaches them): $others"
                fi
                others=$(user_network_containers)
                if [[ -n ${others// /} ]]; then
                    log "warning: 'swarm leave' on Engine 20.10 drops the embedded-DNS records of containers on user-defined networks (moby#45144): $others"
                fi
                log "the system daemon leaves the swarm-nodes swarm"
                if ! timeout 60 docker -H unix:///var/run/docker.sock swarm leave --force >/dev/null 2>&1; then
                    log "'docker swarm leave --force' on the system daemon failed"
                    ok=0
                fi
            else
                log "the system daemon is in a swarm (state $state) that swarm-nodes did not create: leaving it alone"
            fi
        fi
        remove_gwbridge || ok=0
    else
        log "the system daemon does not answer: not touching its swarm or docker_gwbridge"
        ok=0
    fi

    stop_registry
    if [[ -e $CERTS_D ]]; then
        log "removing $CERTS_D"
        rm -rf "$CERTS_D"
    fi
    if [[ -f $RECORD/certs-d-existed && $(cat "$RECORD/certs-d-existed") == 0 ]]; then
        rmdir /etc/docker/certs.d 2>/dev/null || true
    fi

    for sock in $(our_shim_sockets); do rm -f "$sock"; done
    unmount_all || {
        log "cannot unmount: $(our_mounts | tr '\n' ' ')"
        ok=0
    }
    remove_cgroups || ok=0

    if ip link show "$VETH_HOST" >/dev/null 2>&1; then
        log "deleting link $VETH_HOST"
        ip link del "$VETH_HOST" || ok=0
    fi
    if ip link show "$VETH_NS" >/dev/null 2>&1; then
        ip link del "$VETH_NS" || ok=0
    fi
    if netns_exists; then
        log "deleting netns $NETNS"
        ip netns del "$NETNS" || ok=0
    fi
    if [[ -f $RECORD/run-netns-existed && $(cat "$RECORD/run-netns-existed") == 0 && -d /run/netns ]] &&
        [[ -z $(ls -A /run/netns) ]]; then
        umount /run/netns 2>/dev/null || true
        rmdir /run/netns 2>/dev/null || true
    fi
    if [[ -f $RECORD/run-containerd-existed && $(cat "$RECORD/run-containerd-existed") == 0 ]]; then
        rmdir "$SHIM_SOCKET_DIR" /run/containerd 2>/dev/null || true
    fi

    if [[ -e $STATE ]]; then
        if [[ -n $(our_mounts) ]]; then
            log "not deleting $STATE: mounts remain"
            ok=0
        elif gwbridge_is_ours; then
            # Keep the record, so a later `down` or `leftovers` still knows whose it is.
            log "keeping $RECORD (docker_gwbridge is still there); deleting the rest of $STATE"
            find "$STATE" -mindepth 1 -maxdepth 1 ! -name record -exec rm -rf --one-file-system {} +
            ok=0
        else
            log "deleting $STATE"
            rm -rf --one-file-system "$STATE"
        fi
    fi

    local left
    left=$(list_leftovers)
    if [[ -n $left ]]; then
        log "left over:"
        printf '%s\n' "$left" | sed 's/^/swarm-nodes:   /' >&2
        ok=0
    fi
    if ((ok)); then
        log "down: nothing left"
    else
        fail "down did not remove everything (see above)"
    fi
}

# ---------------------------------------------------------------- kill-node2

cmd_kill_node2() {
    [[ $EUID == 0 ]] || fail "must run as root"
    local pids
    pids=$(our_pids node2 | tr '\n' ' ')
    [[ -n ${pids// /} ]] || fail "node 2 is not running"
    log "SIGKILL node 2: $pids"
    kill_node2_processes || fail "node 2 survived SIGKILL"
    log "node 2 is gone (its mounts, netns and swarm membership stay until 'down')"
}

# ---------------------------------------------------------------- up

# ip2int A.B.C.D
ip2int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# overlaps CIDR CIDR
overlaps() {
    local n1=${1%/*} l1=32 n2=${2%/*} l2=32 l mask
    [[ $1 == */* ]] && l1=${1#*/}
    [[ $2 == */* ]] && l2=${2#*/}
    l=$((l1 < l2 ? l1 : l2))
    mask=$(((0xffffffff << (32 - l)) & 0xffffffff))
    (((($(ip2int "$n1") ^ $(ip2int "$n2")) & mask) == 0))
}

# Fails if a route or address of the host (not ours) overlaps our networks.
check_addresses() {
    local line dst net
    while read -r line; do
        [[ -z $line || $line == *" dev $VETH_HOST"* ]] && continue
        dst=${line%% *}
        [[ $dst == default || ! $dst =~ ^[0-9.]+(/[0-9]+)?$ ]] && continue
        for net in "$NET_CIDR" "$NODE2_POOL"; do
            if overlaps "$dst" "$net"; then
                fail "the route '$line' overlaps $net, which swarm-nodes uses: refusing"
            fi
        done
    done < <(ip -4 route show table all 2>/dev/null | sed -E 's/^(local|broadcast|unicast|unreachable|blackhole|prohibit|throw) //')
}

make_tls() {
    local dir=$STATE/registry/tls
    mkdir -p "$dir"
    log "making a CA and a server certificate for $REGISTRY"
    run openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=wakeproxy swarm-nodes test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt"
    run openssl req -newkey rsa:2048 -nodes -subj "/CN=$MANAGER_ADDR" \
        -keyout "$dir/server.key" -out "$dir/server.csr"
    printf '%s\n' "subjectAltName=IP:$MANAGER_ADDR" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$dir/server.ext"
    run openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 30 -extfile "$dir/server.ext" -out "$dir/server.crt"
}

start_registry() {
    local registry_bin
    registry_bin=$(command -v docker-registry)
    mkdir -p "$STATE/registry/data"
    cat >"$REGISTRY_CONFIG" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: wakeproxy-swarm-nodes-registry
storage:
  filesystem:
    rootdirectory: $STATE/registry/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
  tls:
    certificate: $STATE/registry/tls/server.crt
    key: $STATE/registry/tls/server.key
EOF
    mkdir -p "$CERTS_D"
    cp "$STATE/registry/tls/ca.crt" "$CERTS_D/ca.crt"
    log "starting the registry on https://$REGISTRY (log $REGISTRY_LOG)"
    setsid "$registry_bin" serve "$REGISTRY_CONFIG" >"$REGISTRY_LOG" 2>&1 </dev/null 9<&- &
    echo $! >"$STATE/registry.pid"
    local deadline=$((SECONDS + REGISTRY_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 2 --cacert "$STATE/registry/tls/ca.crt" "https://$REGISTRY/v2/" 2>/dev/null; do
        if ! kill -0 "$(cat "$STATE/registry.pid")" 2>/dev/null; then
            fail "the registry exited: $(tail -n 5 "$REGISTRY_LOG")"
        fi
        ((SECONDS < deadline)) || fail "the registry does not answer on https://$REGISTRY/v2/ after ${REGISTRY_TIMEOUT}s: $(tail -n 5 "$REGISTRY_LOG")"
        sleep 0.2
    done
}

start_node2() {
    local hostname=$1 pid
    printf '{}\n' >"$STATE/daemon.json"
    mkdir -p "$STATE/data" "$STATE/exec"
    log "starting node 2's engine in netns $NETNS as $hostname (socket $NODE2_SOCK, log $NODE2_LOG)"
    # nsenter --net, not `ip netns exec` (which remounts /sys and hides the cgroup mounts);
    # its own UTS namespace for a hostname of its own; the empty --config-file keeps
    # /etc/docker/daemon.json (data-root, storage driver) away. Without --containerd it starts
    # its own containerd under its exec-root. No iptables: published ports go through
    # docker-proxy. The storage driver is the engine's choice (overlay2 where it works).
    # shellcheck disable=SC2016 # $0 and $@ are for the inner sh
    setsid nsenter --net="/run/netns/$NETNS" -- unshare --uts -- \
        sh -c 'printf "%s\n" "$0" >/proc/sys/kernel/hostname && exec "$@"' "$hostname" \
        dockerd \
        --config-file "$STATE/daemon.json" \
        --data-root "$STATE/data" \
        --exec-root "$STATE/exec" \
        --pidfile "$STATE/dockerd.pid" \
        -H "unix://$NODE2_SOCK" \
        --bridge=none --iptables=false --ip6tables=false \
        --default-address-pool "base=$NODE2_POOL,size=24" \
        --cgroup-parent "/$CGROUP_PARENT" \
        ${SWARM_NODES_STORAGE_DRIVER:+--storage-driver "$SWARM_NODES_STORAGE_DRIVER"} \
        >>"$NODE2_LOG" 2>&1 </dev/null 9<&- &
    pid=$!
    local deadline=$((SECONDS + ENGINE_TIMEOUT))
    until docker2 version >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null && [[ -z $(our_pids node2) ]]; then
            fail "node 2's engine exited"
        fi
        ((SECONDS < deadline)) || fail "node 2's engine does not answer after ${ENGINE_TIMEOUT}s"
        sleep 0.2
    done
    log "node 2's engine answers (storage driver $(docker2 info --format '{{.Driver}}'))"
}

two_nodes_ready() {
    local out
    out=$(docker1 node ls --format '{{.Hostname}} {{.Status}}') || return 1
    [[ $(grep -c ' Ready$' <<<"$out") == 2 && $(wc -l <<<"$out") == 2 ]]
}

cmd_up() {
    local t0=$SECONDS state left host_hostname node2_hostname token manager_id node2_id manager_hostname
    [[ $EUID == 0 ]] || fail "must run as root"
    need docker dockerd nsenter unshare setsid ip openssl curl sha256sum docker-registry
    docker1 info >/dev/null 2>&1 || fail "the system daemon does not answer on /var/run/docker.sock"

    state=$(system_swarm_state)
    if [[ $state != inactive ]] && ! swarm_is_ours; then
        fail "the system daemon is in a swarm (state $state) that swarm-nodes did not create (no $LABEL=1 label on its node): refusing, leaving it alone"
    fi

    check_addresses
    left=$(list_leftovers)
    if [[ -n $left ]]; then
        log "leftovers of an earlier run:"
        printf '%s\n' "$left" | sed 's/^/swarm-nodes:   /' >&2
        log "cleaning them up first"
        TOUCHED=1
        (CMD=down cmd_down) || fail "could not clean the leftovers of an earlier run: refusing"
    fi

    host_hostname=$(cat /proc/sys/kernel/hostname)
    node2_hostname=$NETNS
    [[ $node2_hostname == "$host_hostname" ]] && node2_hostname=$NETNS-b

    TOUCHED=1
    mkdir -p "$RECORD"
    # What existed before, so that `down` removes only what this run created.
    if docker1 network inspect docker_gwbridge >/dev/null 2>&1; then echo 1; else echo 0; fi >"$RECORD/gwbridge-existed"
    if [[ -d /run/netns ]]; then echo 1; else echo 0; fi >"$RECORD/run-netns-existed"
    if [[ -d /run/containerd ]]; then echo 1; else echo 0; fi >"$RECORD/run-containerd-existed"
    if [[ -d /etc/docker/certs.d ]]; then echo 1; else echo 0; fi >"$RECORD/certs-d-existed"

    log "creating netns $NETNS and veth $VETH_HOST ($MANAGER_ADDR) <-> $VETH_NS ($NODE2_ADDR)"
    run ip netns add "$NETNS"
    run ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
    run ip link set "$VETH_NS" netns "$NETNS"
    run ip addr add "$MANAGER_ADDR/24" dev "$VETH_HOST"
    run ip link set "$VETH_HOST" up
    run ip -n "$NETNS" addr add "$NODE2_ADDR/24" dev "$VETH_NS"
    run ip -n "$NETNS" link set "$VETH_NS" up
    run ip -n "$NETNS" link set lo up

    make_tls
    start_registry
    start_node2 "$node2_hostname"

    log "swarm init on the system daemon, advertising and listening on $MANAGER_ADDR"
    date +%s >"$RECORD/swarm-init-started"
    run docker1 swarm init --advertise-addr "$MANAGER_ADDR" --listen-addr "$MANAGER_ADDR:2377" \
        --data-path-addr "$MANAGER_ADDR"
    manager_id=$(docker1 info --format '{{.Swarm.NodeID}}')
    echo "$manager_id" >"$RECORD/swarm-node-id"
    run docker1 node update --label-add "$LABEL=1" "$manager_id"

    log "node 2 joins as a worker"
    token=$(docker1 swarm join-token -q worker)
    run docker2 swarm join --token "$token" --advertise-addr "$NODE2_ADDR" \
        --listen-addr "$NODE2_ADDR:2377" --data-path-addr "$NODE2_ADDR" "$MANAGER_ADDR:2377"
    wait_for "both nodes Ready in 'docker node ls'" "$READY_TIMEOUT" two_nodes_ready
    node2_id=$(docker2 info --format '{{.Swarm.NodeID}}')
    manager_hostname=$(docker1 node inspect self --format '{{.Description.Hostname}}')
    node2_hostname=$(docker1 node inspect "$node2_id" --format '{{.Description.Hostname}}')

    cat >"$STATE/env" <<EOF
NODE2_DOCKER_HOST=unix://$NODE2_SOCK
NODE2_ADDR=$NODE2_ADDR
NODE2_HOSTNAME=$node2_hostname
NODE2_NODE_ID=$node2_id
NODE2_NETNS=$NETNS
MANAGER_ADDR=$MANAGER_ADDR
MANAGER_HOSTNAME=$manager_hostname
MANAGER_NODE_ID=$manager_id
REGISTRY=$REGISTRY
REGISTRY_CA=$CERTS_D/ca.crt
SWARM_NODES_STATE=$STATE
EOF
    log "up in $((SECONDS - t0))s: 2 nodes Ready ($manager_hostname manager, $node2_hostname worker); env in $STATE/env"
    cat "$STATE/env"
}

# ---------------------------------------------------------------- main

# One `up`/`down`/`kill-node2` at a time: a lock on this file (closed for the daemons started).
lock() {
    exec 9<"$SELF"
    flock -w 300 9 || fail "another swarm-nodes.sh up/down is running"
}

case $CMD in
up)
    lock
    trap 'trap - ERR; log "interrupted; run '\''$SELF down'\'' to clean up"; exit 130' INT TERM
    cmd_up
    ;;
down)
    lock
    cmd_down
    ;;
leftovers) cmd_leftovers ;;
kill-node2)
    lock
    cmd_kill_node2
    ;;
docker2)
    shift
    exec docker -H "unix://$NODE2_SOCK" "$@"
    ;;
env)
    [[ -s $STATE/env ]] || fail "not up: $STATE/env is missing"
    cat "$STATE/env"
    ;;
*) usage ;;
esac
