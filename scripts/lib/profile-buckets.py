"""Splits wakeproxy's CPU per request into named costs, for scripts/profile.sh.

usage: profile-buckets.py SUMMARY_TSV PROXY_PID

SUMMARY_TSV has one line per load: name, CPU µs per request (a run with nothing attached),
requests of the `perf stat` run, its CSV, and the perf.data file (whose `perf script` output
sits next to it as LOAD.script.gz). Each sample of the proxy's process goes to the first named
cost found walking its call chain from the leaf; the shares times the CPU per request give
µs per request. Prints a Markdown report.
"""

import collections
import gzip
import re
import sys

# (cost, pattern): checked in this order against each frame, leaf first; the first frame that
# matches any pattern decides. Kernel and user frames alike.
RULES = [
    ("copies", r"^(copy_user|rep_movs|_copy_to_iter|_copy_from_iter|__copy_|copy_page|"
               r"simple_copy_to_iter|skb_copy_datagram|__memcpy|memcpy|__memmove|memmove|"
               r"__memset|memset)"),
    ("heap (malloc, free)", r"(^_int_malloc|^_int_free|^malloc|^free$|^cfree|^__libc_(malloc|free|realloc|calloc)|"
                            r"^realloc|^calloc|^tcache|^unlink_chunk|^malloc_consolidate|__rust_(alloc|dealloc|realloc)|"
                            r"alloc::raw_vec|^sysmalloc|^__default_morecore|^brk|^mmap|^munmap)"),
    ("timers and clocks", r"(clock_gettime|__vdso|Instant::now|ktime_get|read_tsc|hrtimer|"
                          r"^__mod_timer|^mod_timer|sk_reset_timer|tcp_rearm_rto|timerqueue)"),
    ("socket options and modes", r"(setsockopt|sock_setsockopt|do_sock_setsockopt|sock_ioctl|do_vfs_ioctl|"
                                 r"__x64_sys_ioctl|__x64_sys_fcntl|do_fcntl|set_nonblocking|set_read_timeout|"
                                 r"set_write_timeout|set_nodelay)"),
    ("waits and wake-ups (futex, scheduler)", r"(futex|^schedule|^__schedule|try_to_wake_up|^wake_up|__wake_up|ttwu_|"
                                             r"finish_task_switch|dequeue_task|enqueue_task|pick_next|"
                                             r"__switch_to|switch_mm|update_curr|select_task_rq|^psi_|"
                                             r"Condvar|condvar|parking_lot|pthread_cond|__lll_lock|"
                                             r"^sched_|_raw_spin_rq_lock|update_load_avg|set_next_entity|"
                                             r"put_prev|reweight|__enqueue_entity|__dequeue_entity|"
                                             r"dispatch::Dispatch|dispatch::work)"),
    ("poller (epoll, waiting room)", r"(epoll|^ep_|wakeproxy::server::poller|wakeproxy::server::waiting|"
                                     r"wakeproxy::server::waitroom|wakeproxy::server::admission|eventfd)"),
    ("accept and close", r"(accept|inet_csk|tcp_close|__tcp_close|tcp_set_state|__fput|sock_close|inet_release|"
                         r"^fput|__x64_sys_close|close_fd|^__close|tcp_v4_destroy|tcp_done|inet_child|"
                         r"tcp_conn_request|tcp_v4_syn|tcp_create_openreq|inet_reqsk|tcp_check_req|"
                         r"tcp_rcv_synsent|tcp_finish_connect|sk_clone|tcp_fin|tcp_time_wait|"
                         r"inet_twsk|tcp_send_fin|tcp_send_active_reset|sock_alloc|__sys_socket|"
                         r"d_alloc_pseudo|alloc_file|get_unused_fd|fd_install)"),
    ("header parsing", r"(httparse|wakeproxy::http::head|wakeproxy::http::target|wakeproxy::http::host)"),
    ("header rewriting and answer rendering", r"(wakeproxy::upstream::forward|wakeproxy::http::rewrite|"
                                              r"wakeproxy::http::reply|wakeproxy::http::reprefix|"
                                              r"wakeproxy::pipeline::respond|wakeproxy::http::cookie|"
                                              r"core::fmt|alloc::fmt|itoa|fmt::write)"),
    ("generation lookup", r"wakeproxy::pipeline::generation"),
    ("activity and metrics bookkeeping", r"(wakeproxy::lifecycle::activity|wakeproxy::endpoints::metrics|"
                                         r"wakeproxy::base::histogram|wakeproxy::base::load)"),
    ("upstream pool", r"wakeproxy::upstream::pool"),
    ("access log", r"(^log::|wakeproxy::app::.*log|access_log|wakeproxy::.*::log_access)"),
    ("routing, auth and other pipeline code", r"wakeproxy::pipeline::"),
    ("body framing and buffered I/O", r"(wakeproxy::http::body|wakeproxy::http::bufstream|"
                                      r"wakeproxy::http::pace|wakeproxy::http::splice|wakeproxy::base::socket)"),
    ("netfilter (the host's iptables and conntrack rules; both proxies pay them)",
     r"^(ipt_|nf_|__nf_|nf_conntrack|ipv4_conntrack|iptable_|xt_|ip6t_|nft_)"),
    ("loopback TCP (send, receive, softirq)", r"(tcp|^ip_|^__ip|inet_|^sock_|^sk_|skb|__dev_queue_xmit|"
                                              r"dev_hard_start_xmit|loopback|netif_|net_rx|do_softirq|"
                                              r"__local_bh|napi|process_backlog|__sys_sendto|"
                                              r"__sys_recvfrom|sendmsg|recvmsg|security_socket|"
                                              r"release_sock|lock_sock|nf_|sock_write_iter|"
                                              r"sock_read_iter|do_iter_readv|vfs_writev|do_writev|"
                                              r"__x64_sys_(sendto|recvfrom|writev|read|write)|"
                                              r"^__sock|__release_sock|^dst_|^neigh|__napi|"
                                              r"validate_xmit|^eth_|__netdev|rps_|__inet)"),
    ("syscall entry and exit", r"(entry_SYSCALL|syscall_return|do_syscall_64|syscall_exit|"
                               r"exit_to_user_mode|syscall_enter|^__x64_sys|^x64_sys_call|"
                               r"^__GI___|^__libc_(send|recv|write|read)|^syscall$|^send$|^recv$|"
                               r"^__send$|^__recv$|^writev$|^__writev$|^read$|^write$|"
                               r"fdget|__fget|^rw_verify|srso_|retbleed|__x86_return|"
                               r"^native_|^irqentry|^asm_)"),
    ("other proxy code", r"^wakeproxy::"),
    ("Rust standard library", r"^(core::|std::|alloc::|<)"),
]
COMPILED = [(name, re.compile(p)) for name, p in RULES]


def samples(path, pid):
    """Call chains (leaf first) of the samples of process `pid`."""
    chain, keep = [], False
    with gzip.open(path, "rt", errors="replace") as f:
        for line in f:
            if not line.strip():
                if keep and chain:
                    yield chain
                chain, keep = [], False
            elif not line[0].isspace():
                parts = line.split()
                keep = len(parts) >= 2 and parts[1] == str(pid)
                chain = []
            elif keep:
                parts = line.strip().split(None, 1)
                sym = parts[1] if len(parts) > 1 else "[unknown]"
                sym = re.sub(r"\s*\([^)]*\)$", "", sym)  # the "(dso)" perf may append
                chain.append(sym)
    if keep and chain:
        yield chain


def cost_of(chain):
    for sym in chain:
        for name, rx in COMPILED:
            if rx.search(sym):
                return name
    return "unresolved ([unknown] frames)"


def perf_counts(csv_path, requests):
    out = {}
    try:
        for line in open(csv_path):
            f = line.strip().split(",")
            if len(f) >= 3 and f[0] and f[0][0].isdigit():
                out[f[2]] = float(f[0]) / max(requests, 1)
    except OSError:
        pass
    return out


def main():
    summary, pid = sys.argv[1], sys.argv[2]
    p = print
    p("# Where the proxy's CPU goes per request")
    p()
    p("From `scripts/profile.sh`: wrk on core 0, wakeproxy alone on core 1, 13 B responses from a "
      "static nginx backend. CPU per request from a run with nothing attached; counts from `perf stat` "
      "attached to the proxy; the split from `perf record -C 1 --call-graph dwarf`, each sample given "
      "to the first named cost on its call chain, leaf first (scripts/lib/profile-buckets.py).")
    for line in open(summary):
        load, cpu_us, reqs, csv, data = line.rstrip("\n").split("\t")
        cpu_us, reqs = float(cpu_us), int(reqs or 0)
        script = data.replace(".perf.data", ".script.gz")
        costs, leaves, total = collections.Counter(), collections.Counter(), 0
        for chain in samples(script, pid):
            total += 1
            costs[cost_of(chain)] += 1
            leaves[chain[0]] += 1
        counts = perf_counts(csv, reqs)
        if total == 0:
            p(f"\n## {load}\n\nNo samples of process {pid} in {script}.")
            continue
        p()
        p(f"## {'keep-alive' if load == 'keep-alive' else 'a new connection per request'}, 13 B")
        p()
        p(f"CPU per request: **{cpu_us:.1f} µs**. "
          + ", ".join(f"{k.replace('raw_syscalls:sys_enter', 'syscalls')} per request: {v:.2f}"
                      for k, v in counts.items())
          + f". Samples of the proxy: {total}.")
        p()
        p("| cost | share | µs per request |")
        p("|---|---:|---:|")
        # Every named cost, the ones with no samples too (their cost is below what sampling sees).
        names = [name for name, _ in costs.most_common()]
        names += [name for name, _ in RULES if name not in costs]
        for name in names:
            n = costs[name]
            p(f"| {name} | {100 * n / total:.1f}% | {cpu_us * n / total:.2f} |")
        p()
        p("Hottest leaf functions (self time):")
        p()
        p("| function | share |")
        p("|---|---:|")
        for sym, n in leaves.most_common(15):
            p(f"| `{sym[:90]}` | {100 * n / total:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
