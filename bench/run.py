#!/usr/bin/env python3
"""Runs the evq benchmark suite against already-built binaries (run.sh builds them).

  run.py --bin-dir DIR [--quick | --smoke] [--out-dir DIR]

Writes results.md, results.json and SVG charts to the output directory and prints the table.
Workloads (see docs/BENCHMARKS.md): W2 closed-loop echo at 100 (and, full mode, 1,000)
connections, 64 B: requests/s, median of interleaved rounds with min-max; user-space
instructions per request (callgrind, Ir(2N) - Ir(N) over N); syscalls per request (strace -c -f,
same difference). W1 one connection ping-pong: round-trip p50/p99. W5 evq Waker. W6 idle RSS per
connection.
"""
import argparse, datetime, json, os, re, resource, shutil, statistics, subprocess, sys, tempfile, time

SERVERS = [  # (name, binary, extra args)
    ("evq-epoll", "srv_evq", ["--backend", "epoll"]),
    ("evq-poll", "srv_evq", ["--backend", "poll"]),
    ("epoll (floor)", "srv_epoll", []),
    ("libev", "srv_libev", []),
    ("libuv", "srv_libuv", []),
    ("libevent", "srv_libevent", []),
    ("asio", "srv_asio", []),
    ("threads", "srv_threads", []),
]
EVQ, FLOOR = "evq-epoll", "epoll (floor)"
NOT_PEERS = {"evq-epoll", "evq-poll", "epoll (floor)"}
NCPU = os.cpu_count() or 1
SERVER_CPU, CLIENT_CPU = "0", ("1" if NCPU > 1 else "0")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def taskset(cpu):
    return ["taskset", "-c", cpu] if shutil.which("taskset") else []


def start_server(cmd, timeout=30):
    """Starts a server, waits for its "port N" line; returns (Popen, port)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=raise_nofile)
    t0 = time.time()
    line = p.stdout.readline()
    m = re.match(r"port (\d+)", line or "")
    if not m:
        p.kill()
        raise RuntimeError(f"{cmd}: no port line ({line!r}) {p.stderr.read()[:500]}")
    if time.time() - t0 > timeout:
        raise RuntimeError("server start timeout")
    return p, int(m.group(1))


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def loadgen(bins, port, *args, timeout=600):
    out = subprocess.run(taskset(CLIENT_CPU) + [os.path.join(bins, "bench_loadgen"), "--port", str(port)]
                         + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                         preexec_fn=raise_nofile)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[:500]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def server_cmd(bins, binary, extra):
    return [os.path.join(bins, binary)] + extra


def closed_loop(bins, servers, conns, rounds, duration, warmup):
    """Interleaved rounds: every server once per round."""
    res = {name: [] for name, _, _ in servers}
    for r in range(rounds):
        for name, binary, extra in servers:
            p, port = start_server(taskset(SERVER_CPU) + server_cmd(bins, binary, extra))
            try:
                res[name].append(loadgen(bins, port, "--conns", conns, "--duration", duration,
                                         "--warmup", warmup))
            finally:
                stop(p)
    return res


def fixed_count(bins, wrapper, binary, extra, n, conns, timeout=900):
    """Runs the server under `wrapper` until it has echoed n requests."""
    p, port = start_server(taskset(SERVER_CPU) + wrapper + server_cmd(bins, binary, extra + ["--requests", str(n)]),
                           timeout=120)
    try:
        loadgen(bins, port, "--conns", conns, "--until-closed", timeout=timeout)
        p.wait(timeout)
    finally:
        stop(p)


def callgrind_ir(bins, binary, extra, n, conns, tmp):
    f = os.path.join(tmp, f"cg.{binary}.{'_'.join(extra)}.{n}")
    fixed_count(bins, ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={f}"], binary, extra, n, conns)
    with open(f) as fh:
        for line in fh:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {f}")


def strace_counts(bins, binary, extra, n, conns, tmp):
    f = os.path.join(tmp, f"st.{binary}.{'_'.join(extra)}.{n}")
    fixed_count(bins, ["strace", "-c", "-f", "-o", f], binary, extra, n, conns)
    counts = {}
    with open(f) as fh:
        for line in fh:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
                calls = int(parts[3])
                counts[parts[-1]] = counts.get(parts[-1], 0) + calls
    return counts


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle_rss(bins, binary, extra, conns):
    p, port = start_server(taskset(SERVER_CPU) + server_cmd(bins, binary, extra))
    try:
        time.sleep(0.2)
        before = rss_kib(p.pid)
        c = subprocess.Popen(taskset(CLIENT_CPU) + [os.path.join(bins, "bench_loadgen"), "--port", str(port),
                             "--conns", str(conns), "--hold", "600"], stdout=subprocess.PIPE, text=True,
                             preexec_fn=raise_nofile)
        line = c.stdout.readline()
        if "connected" not in line:
            raise RuntimeError("idle clients failed to connect")
        time.sleep(1.0)
        after = rss_kib(p.pid)
        c.kill()
        c.wait()
        return (after - before) * 1024 / conns
    finally:
        stop(p)


def machine_info():
    info = {"nproc": NCPU, "kernel": os.uname().release, "cpu": "", "packages": {}}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in fh if l.startswith("model name")), "")
    except OSError:
        pass
    for pkg in ["libuv1-dev", "libevent-dev", "libev-dev", "libasio-dev", "valgrind", "strace", "g++"]:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        info["packages"][pkg] = out.stdout.strip() if out.returncode == 0 else None
    try:
        info["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


def med(xs):
    return statistics.median(xs) if xs else None


def summarize(samples, key):
    xs = [s[key] for s in samples]
    return {"median": med(xs), "min": min(xs), "max": max(xs), "n": len(xs)} if xs else None


def fmt(x, digits=1):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def svg_bars(title, unit, items, path, lower_is_better):
    items = [(k, v) for k, v in items if v is not None]
    if not items:
        return
    w, bar_h, gap, left = 640, 22, 8, 130
    h = 40 + len(items) * (bar_h + gap) + 20
    vmax = max(v for _, v in items) or 1
    rows = []
    for i, (k, v) in enumerate(items):
        y = 40 + i * (bar_h + gap)
        bw = max(1, (w - left - 120) * v / vmax)
        color = "#d9480f" if k.startswith("evq") else ("#495057" if k == FLOOR else "#4dabf7")
        rows.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" font-size="12">{k}</text>'
                    f'<rect x="{left}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{color}"/>'
                    f'<text x="{left + bw + 4:.1f}" y="{y + 15}" font-size="12">{fmt(v)}</text>')
    better = "lower is better" if lower_is_better else "higher is better"
    with open(path, "w") as fh:
        fh.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">'
                 f'<rect width="100%" height="100%" fill="white"/>'
                 f'<text x="10" y="22" font-size="14" font-weight="bold">{title} ({unit}, {better})</text>'
                 + "".join(rows) + "</svg>\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--out-dir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny configuration for ctest; no valgrind/strace")
    a = ap.parse_args()
    bins = os.path.abspath(a.bin_dir)
    mode = "smoke" if a.smoke else ("quick" if a.quick else "full")
    cfg = {
        "smoke": dict(rounds=1, dur=0.3, warm=0.1, n=500, sn=200, conns=[10], w1_rounds=1, idle=50, waker=(1000, 100000)),
        "quick": dict(rounds=5, dur=1.0, warm=0.3, n=10000, sn=5000, conns=[100], w1_rounds=3, idle=2000, waker=(20000, 2000000)),
        "full": dict(rounds=5, dur=5.0, warm=1.0, n=20000, sn=20000, conns=[100, 1000], w1_rounds=5, idle=10000, waker=(100000, 10000000)),
    }[mode]
    servers = [s for s in SERVERS if os.path.exists(os.path.join(bins, s[1]))]
    have_valgrind = shutil.which("valgrind") and mode != "smoke"
    have_strace = shutil.which("strace") and mode != "smoke"
    out_dir = a.out_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    os.makedirs(out_dir, exist_ok=True)
    R = {"mode": mode, "config": cfg, "servers": [s[0] for s in servers], "workloads": {}}
    tmp = tempfile.mkdtemp(prefix="evq-bench-")
    t_start = time.time()

    def log(msg):
        print(f"[{time.time() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    # W2 throughput, interleaved rounds.
    for conns in cfg["conns"]:
        log(f"W2 {conns} connections x 64 B, {cfg['rounds']} interleaved rounds")
        res = closed_loop(bins, servers, conns, cfg["rounds"], cfg["dur"], cfg["warm"])
        R["workloads"][f"w2_{conns}_rps"] = {k: summarize(v, "rps") for k, v in res.items()}
    # W1 one connection ping-pong.
    log("W1 1 connection ping-pong")
    res = closed_loop(bins, servers, 1, cfg["w1_rounds"], cfg["dur"], cfg["warm"])
    R["workloads"]["w1_p50_us"] = {k: summarize(v, "p50_us") for k, v in res.items()}
    R["workloads"]["w1_p99_us"] = {k: summarize(v, "p99_us") for k, v in res.items()}
    # Instructions per request.
    if have_valgrind:
        n, c = cfg["n"], cfg["conns"][0]
        log(f"callgrind: Ir(2N)-Ir(N) over N, N={n}, {c} connections")
        ir = {}
        for name, binary, extra in servers:
            a1 = callgrind_ir(bins, binary, extra, n, c, tmp)
            a2 = callgrind_ir(bins, binary, extra, 2 * n, c, tmp)
            ir[name] = {"median": (a2 - a1) / n, "min": None, "max": None, "n": 1}
            log(f"  {name}: {ir[name]['median']:.1f} Ir/request")
        R["workloads"]["w2_ir_per_req"] = ir
    if have_strace:
        n, c = cfg["sn"], cfg["conns"][0]
        log(f"strace -c -f: syscalls(2N)-syscalls(N) over N, N={n}")
        sc, ctl, detail = {}, {}, {}
        for name, binary, extra in servers:
            s1 = strace_counts(bins, binary, extra, n, c, tmp)
            s2 = strace_counts(bins, binary, extra, 2 * n, c, tmp)
            diff = {k: s2.get(k, 0) - s1.get(k, 0) for k in set(s1) | set(s2)}
            sc[name] = {"median": sum(diff.values()) / n, "min": None, "max": None, "n": 1}
            ctl[name] = {"median": diff.get("epoll_ctl", 0) / n, "min": None, "max": None, "n": 1}
            detail[name] = {k: round(v / n, 3) for k, v in sorted(diff.items()) if v}
        R["workloads"]["w2_syscalls_per_req"] = sc
        R["workloads"]["w2_epoll_ctl_per_req"] = ctl
        R["syscall_detail"] = detail
    # W5 Waker.
    rounds, posts = cfg["waker"]
    log("W5 Waker")
    out = subprocess.run([os.path.join(bins, "bench_waker"), "--rounds", str(rounds), "--posts", str(posts)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode == 0:
        R["waker"] = json.loads(out.stdout.strip().splitlines()[-1])
        if have_strace:  # eventfd writes per coalesced batch: the posts part alone, under strace
            f = os.path.join(tmp, "st.waker")
            o2 = subprocess.run(["strace", "-f", "-c", "-o", f, os.path.join(bins, "bench_waker"), "--rounds", "0",
                                 "--posts", str(posts // 10)], capture_output=True, text=True, timeout=600)
            if o2.returncode == 0:
                w = json.loads(o2.stdout.strip().splitlines()[-1])
                writes = 0
                with open(f) as fh:
                    for line in fh:
                        parts = line.split()
                        if len(parts) >= 5 and parts[-1] == "write":
                            writes = int(parts[3])
                # one of the writes is the JSON line on stdout
                R["waker_strace"] = {"posts": w["posts"], "batches": w["batches"], "writes": max(0, writes - 1)}
    # W6 idle memory.
    log(f"W6 idle RSS at {cfg['idle']} connections")
    idle = {}
    for name, binary, extra in servers:
        if name in (EVQ, FLOOR, "threads", "libev"):
            try:
                idle[name] = {"median": idle_rss(bins, binary, extra, cfg["idle"]), "min": None, "max": None, "n": 1}
            except Exception as e:  # noqa: BLE001 -- report, keep going
                log(f"  {name}: {e}")
    R["workloads"][f"w6_rss_bytes_per_conn"] = idle
    R["machine"] = machine_info()
    R["elapsed_s"] = round(time.time() - t_start, 1)
    R["date_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    shutil.rmtree(tmp, ignore_errors=True)

    md = render(R)
    with open(os.path.join(out_dir, "results.json"), "w") as fh:
        json.dump(R, fh, indent=2)
    with open(os.path.join(out_dir, "results.md"), "w") as fh:
        fh.write(md)
    W = R["workloads"]
    if "w2_ir_per_req" in W:
        svg_bars("W2 100 conns: user-space instructions per request", "Ir/request",
                 [(k, v["median"]) for k, v in W["w2_ir_per_req"].items()], os.path.join(out_dir, "ir_per_request.svg"), True)
    key = f"w2_{cfg['conns'][0]}_rps"
    svg_bars(f"W2 {cfg['conns'][0]} conns: requests/s (median)", "req/s",
             [(k, v["median"]) for k, v in W[key].items()], os.path.join(out_dir, "w2_rps.svg"), False)
    print(md)
    print(f"results in {out_dir}", file=sys.stderr)


METRICS = [  # key prefix, label, lower is better, target ratio to floor, target note
    ("w2_100_rps", "W2 100 conns, req/s", False, None, ""),
    ("w2_1000_rps", "W2 1,000 conns, req/s", False, None, ""),
    ("w2_10_rps", "W2 10 conns (smoke), req/s", False, None, ""),
    ("w2_ir_per_req", "W2 user-space Ir/request (callgrind)", True, 1.10, "≤ 1.10× floor and ≤ libev"),
    ("w2_syscalls_per_req", "W2 syscalls/request (strace)", True, None, "≤ 2.05"),
    ("w2_epoll_ctl_per_req", "W2 epoll_ctl/request (steady state)", True, None, "0"),
    ("w1_p50_us", "W1 round trip p50 (µs)", True, 1.05, "≤ 1.05× floor"),
    ("w1_p99_us", "W1 round trip p99 (µs)", True, None, ""),
    ("w6_rss_bytes_per_conn", "W6 idle RSS bytes/connection", True, None, "≤ 128 B; ≥ 100× less than threads"),
]


def cell(s):
    if s is None or s.get("median") is None:
        return "–"
    if s.get("min") is None or s["n"] < 2:
        return fmt(s["median"], 2 if s["median"] < 10 else 1)
    spread = (s["max"] - s["min"]) / s["median"] if s["median"] else 0
    flag = " ⚠noisy" if spread > 0.20 else ""
    return f"{fmt(s['median'])} [{fmt(s['min'])}–{fmt(s['max'])}]{flag}"


def render(R):
    W = R["workloads"]
    metrics = [m for m in METRICS if m[0] in W and W[m[0]]]
    m = R.get("machine", {})
    pk = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v)
    lines = [f"# evq benchmark results ({R['mode']} mode, {R['date_utc']}, {R['elapsed_s']} s)", "",
             f"Machine: {m.get('nproc')} CPUs, {m.get('cpu')}, Linux {m.get('kernel')}, load average "
             f"{' '.join(m.get('loadavg', []))} at the end. Versions: {pk}.", "",
             "## All servers", "",
             "| server | " + " | ".join(m[1] for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for name in R["servers"]:
        lines.append(f"| {name} | " + " | ".join(cell(W[m[0]].get(name)) for m in metrics) + " |")
    lines += ["", "Throughput cells: median [min–max] of interleaved rounds; ⚠noisy = spread > 20% of the median.",
              "", "## evq (epoll backend) against the floor and the best peer", "",
              "| metric | evq | floor | evq/floor | best peer | evq/best peer | target | met |",
              "|---|---|---|---|---|---|---|---|"]
    for key, label, lower, target_ratio, note in metrics:
        d = W[key]
        e, f = d.get(EVQ, {}).get("median"), d.get(FLOOR, {}).get("median")
        peers = [(k, v["median"]) for k, v in d.items() if k not in NOT_PEERS and v and v.get("median") is not None]
        best = (min if lower else max)(peers, key=lambda kv: kv[1]) if peers else (None, None)
        rf = e / f if e is not None and f else None
        rb = e / best[1] if e is not None and best[1] else None
        met = ""
        if key == "w2_ir_per_req" and rf is not None:
            libev = d.get("libev", {}).get("median")
            met = "yes" if rf <= 1.10 and (libev is None or e <= libev) else "no"
        elif key == "w2_syscalls_per_req" and e is not None:
            met = "yes" if e <= 2.05 else "no"
        elif key == "w2_epoll_ctl_per_req" and e is not None:
            met = "yes" if e < 0.001 else "no"
        elif key == "w1_p50_us" and rf is not None:
            met = ("yes" if rf <= 1.05 else "no") + " (load-sensitive)"
        elif key == "w6_rss_bytes_per_conn" and e is not None:
            t = d.get("threads", {}).get("median")
            met = ("yes" if e <= 128 else "no") + (f"; threads/evq = {t / e:.0f}×" if t and e > 0 else "")
        lines.append(f"| {label} | {fmt(e, 2)} | {fmt(f, 2)} | {fmt(rf, 2)} | "
                     f"{best[0] or '–'} {fmt(best[1], 2)} | {fmt(rb, 2)} | {note or '–'} | {met or '–'} |")
    if "waker" in R:
        w = R["waker"]
        lines += ["", "## W5 cross-thread wake (evq Waker)", "",
                  f"- round trip (two threads, two Polls): p50 {w['rtt_p50_us']:.2f} µs, p99 {w['rtt_p99_us']:.2f} µs",
                  f"- coalesced posts: {w['posts_per_s']:,.0f} wake() calls/s ({w['posts']:,} posts seen by the "
                  f"consumer as {w['batches']:,} events); target ≥ 1,000,000/s: "
                  + ("met" if w["posts_per_s"] >= 1e6 else "missed")]
        if "waker_strace" in R:
            ws = R["waker_strace"]
            lines.append(f"- under strace: {ws['posts']:,} posts, {ws['batches']:,} batches seen, {ws['writes']:,} "
                         "eventfd write(2) calls; target one write per batch: "
                         + ("met" if ws["writes"] <= max(1, ws["batches"]) else "missed"))
    if "syscall_detail" in R:
        lines += ["", "## Syscalls per request, by call (steady state, strace -c -f difference)", ""]
        for k, v in R["syscall_detail"].items():
            lines.append(f"- {k}: " + ", ".join(f"{s} {c}" for s, c in v.items()))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
