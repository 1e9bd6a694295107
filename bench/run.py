#!/usr/bin/env python3
"""Runs the evq benchmark suite against already-built binaries (run.sh builds them).

  run.py --bin-dir DIR [--quick | --smoke] [--out-dir DIR]

Writes results.md, results.json and SVG charts to the output directory and prints the table.
Workloads (see docs/BENCHMARKS.md for the method):
  W2 closed-loop echo (full mode: 100, 1,000, 10,000 connections x 64 B and 4 KiB): requests/s and
     the server's user and system CPU per request over the measured window; at 100 connections x
     64 B also user-space instructions per request (callgrind, Ir(2N) - Ir(N) over N) and syscalls
     per request (strace -c -f, same difference).
  W1 one connection ping-pong: round trip p50/p99 (server and client on different cores, and on
     the same core).
  W3 open loop at 50% and 80% of the floor's W2 rate: latency p50/p99/p99.9 from intended send time.
  W4 libev's classic benchmark (bench_w4): evq against libev, time and instructions per event.
  W5 evq Waker: round trip and coalesced posts. W6 idle RSS per connection.
Every figure is the median of interleaved rounds (every server once per round) with min-max.
"""
import argparse, datetime, json, os, re, resource, shutil, statistics, subprocess, sys, tempfile, time

SERVERS = [  # (name, binary, extra args, in the full W2/W3 matrix)
    ("evq-epoll", "srv_evq", ["--backend", "epoll"], True),
    ("evq-poll", "srv_evq", ["--backend", "poll"], False),
    ("evq-io_uring", "srv_evq", ["--backend", "io_uring"], False),
    ("evq-ring", "srv_ring", ["--backend", "default"], True),
    ("evq-ring-epoll", "srv_ring", ["--backend", "epoll"], False),
    ("epoll (floor)", "srv_epoll", [], True),
    ("libev", "srv_libev", [], True),
    ("libuv", "srv_libuv", [], True),
    ("libevent", "srv_libevent", [], True),
    ("asio", "srv_asio", [], True),
    ("mio", "srv_mio", [], True),
    ("threads", "srv_threads", [], True),
]
EVQ, FLOOR = "evq-epoll", "epoll (floor)"
NOT_PEERS = {"evq-epoll", "evq-poll", "evq-io_uring", "evq-ring", "evq-ring-epoll", "epoll (floor)"}
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


def loadgen(bins, port, *args, timeout=600, cpu=None):
    out = subprocess.run(taskset(cpu or CLIENT_CPU) + [os.path.join(bins, "bench_loadgen"), "--port", str(port)]
                         + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                         preexec_fn=raise_nofile)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[:500]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def server_cmd(bins, binary, extra):
    return [os.path.join(bins, binary)] + extra


def interleaved(bins, servers, rounds, args_of, log, client_cpu=None):
    """Every server once per round; args_of(name) gives the loadgen arguments (None: skip).
    A failed run is logged and left out rather than ending the suite."""
    res = {name: [] for name, *_ in servers}
    for _ in range(rounds):
        for name, binary, extra, _core in servers:
            args = args_of(name)
            if args is None:
                continue
            p, port = start_server(taskset(SERVER_CPU) + server_cmd(bins, binary, extra))
            try:
                res[name].append(loadgen(bins, port, "--server-pid", p.pid, *args, cpu=client_cpu))
            except Exception as e:  # noqa: BLE001 -- report, keep going
                log(f"  {name}: {e}")
            finally:
                stop(p)
    return {k: v for k, v in res.items() if v}


def fixed_count(bins, wrapper, binary, extra, n, conns, timeout=900):
    """Runs the server under `wrapper` until it has echoed n requests."""
    p, port = start_server(taskset(SERVER_CPU) + wrapper + server_cmd(bins, binary, extra + ["--requests", str(n)]),
                           timeout=120)
    try:
        loadgen(bins, port, "--conns", conns, "--until-closed", timeout=timeout)
        p.wait(timeout)
    finally:
        stop(p)


def callgrind_total(f):
    with open(f) as fh:
        for line in fh:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {f}")


def callgrind_ir(bins, binary, extra, n, conns, tmp):
    f = os.path.join(tmp, f"cg.{binary}.{'_'.join(extra)}.{n}")
    fixed_count(bins, ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={f}"], binary, extra, n, conns)
    return callgrind_total(f)


def parse_strace(f):
    counts = {}
    with open(f) as fh:
        for line in fh:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
                counts[parts[-1]] = counts.get(parts[-1], 0) + int(parts[3])
    return counts


def strace_counts(bins, binary, extra, n, conns, tmp):
    f = os.path.join(tmp, f"st.{binary}.{'_'.join(extra)}.{n}")
    fixed_count(bins, ["strace", "-c", "-f", "-o", f], binary, extra, n, conns)
    return parse_strace(f)


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
        try:
            line = c.stdout.readline()
            if "connected" not in line:
                raise RuntimeError("idle clients failed to connect")
            # Wait until the server has accepted them all (RSS stops growing), at most 20 s.
            last, t_end = -1, time.time() + 20
            while time.time() < t_end:
                time.sleep(0.5)
                now = rss_kib(p.pid)
                if now == last:
                    break
                last = now
            after = rss_kib(p.pid)
        finally:
            c.kill()
            c.wait()
        return (after - before) * 1024 / conns
    finally:
        stop(p)


def w4_run(bins, wrapper, lib, pipes, active, writes, iterations, timeouts, timeout=600):
    cmd = wrapper + [os.path.join(bins, "bench_w4"), "--lib", lib, "--pipes", str(pipes), "--active", str(active),
                     "--writes", str(writes), "--iterations", str(iterations)] + (["--timeouts"] if timeouts else [])
    out = subprocess.run(taskset(SERVER_CPU) + cmd, capture_output=True, text=True, timeout=timeout,
                         preexec_fn=raise_nofile)
    if out.returncode != 0:
        raise RuntimeError(f"bench_w4 failed: {out.stderr[:300]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_info():
    info = {"nproc": NCPU, "kernel": os.uname().release, "cpu": "", "packages": {}}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in fh if l.startswith("model name")), "")
    except OSError:
        pass
    for pkg in ["libuv1-dev", "libevent-dev", "libev-dev", "libasio-dev", "librust-mio-dev", "liburing-dev",
                "valgrind", "strace", "g++"]:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        info["packages"][pkg] = out.stdout.strip() if out.returncode == 0 else None
    for tool in ["rustc", "cargo"]:
        exe = shutil.which(tool) or os.path.expanduser(f"~/.cargo/bin/{tool}")
        try:
            info["packages"][tool] = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split()[1]
        except (OSError, IndexError):
            pass
    try:
        info["loadavg"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


def med(xs):
    return statistics.median(xs) if xs else None


def summarize(samples, key, scale=1.0):
    xs = [s[key] * scale for s in samples if s.get(key) is not None]
    return {"median": med(xs), "min": min(xs), "max": max(xs), "n": len(xs)} if xs else None


def summarize_fn(samples, fn):
    xs = [x for x in (fn(s) for s in samples) if x is not None]
    return {"median": med(xs), "min": min(xs), "max": max(xs), "n": len(xs)} if xs else None


def single(x):
    return {"median": x, "min": None, "max": None, "n": 1}


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


def size_label(size):
    return "4 KiB" if size == 4096 else f"{size} B"


# W2 configurations: (connections, request size, measured seconds, all servers or only the matrix set).
MODES = {
    "smoke": dict(rounds=1, warm=0.1, w2=[(10, 64, 0.2, True), (10, 4096, 0.2, False)],
                  w1_rounds=1, w1_dur=0.2, w3=(10, 0.2, 1), n=None, sn=None,
                  w4=dict(pipes=[100], active=10, writes=1000, iterations=2, rounds=1),
                  idle=[50], waker=(1000, 100000)),
    "quick": dict(rounds=3, warm=0.2, w2=[(100, 64, 0.5, True)],
                  w1_rounds=3, w1_dur=0.4, w3=(100, 0.4, 3), n=5000, sn=5000,
                  w4=dict(pipes=[1000], active=100, writes=20000, iterations=3, rounds=3),
                  idle=[2000], waker=(20000, 2000000)),
    "full": dict(rounds=5, warm=0.3, w2=[(100, 64, 1.0, True), (1000, 64, 0.6, False), (10000, 64, 0.6, False),
                                        (100, 4096, 0.6, False), (1000, 4096, 0.6, False), (10000, 4096, 0.6, False)],
                 w1_rounds=5, w1_dur=0.6, w3=(100, 0.6, 5), n=10000, sn=10000,
                 w4=dict(pipes=[1000, 9900], active=100, writes=20000, iterations=5, rounds=5),
                 idle=[10000, 19000], waker=(100000, 10000000)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--out-dir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny configuration for CI; no valgrind/strace")
    a = ap.parse_args()
    bins = os.path.abspath(a.bin_dir)
    mode = "smoke" if a.smoke else ("quick" if a.quick else "full")
    cfg = MODES[mode]
    servers = [s for s in SERVERS if os.path.exists(os.path.join(bins, s[1]))]
    matrix = [s for s in servers if s[3]]
    have_valgrind = shutil.which("valgrind") and cfg["n"]
    have_strace = shutil.which("strace") and cfg["sn"]
    # Smoke runs (CI) write next to the binaries, never over a measured table in bench/results/.
    out_dir = a.out_dir or (os.path.join(os.path.dirname(bins), "smoke-results") if mode == "smoke" else
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                         datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")))
    os.makedirs(out_dir, exist_ok=True)
    R = {"mode": mode, "config": cfg, "servers": [s[0] for s in servers], "workloads": {}, "w2_configs": []}
    W = R["workloads"]
    tmp = tempfile.mkdtemp(prefix="evq-bench-")
    t_start = time.time()

    failures = []

    def log(msg):
        if msg.startswith("  ") and ":" in msg:  # a server or tool that failed; the run goes on
            failures.append(msg.strip())
        print(f"[{time.time() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    # W2 throughput and server CPU, interleaved rounds.
    for conns, size, dur, everyone in cfg["w2"]:
        group = servers if everyone else matrix
        tag = f"{conns}_{size}"
        log(f"W2 {conns} connections x {size_label(size)}, {len(group)} servers, {cfg['rounds']} interleaved rounds")
        warm = cfg["warm"] + (0.3 if conns >= 10000 else 0)
        res = interleaved(bins, group, cfg["rounds"],
                          lambda _n: ["--conns", conns, "--size", size, "--duration", dur, "--warmup", warm], log)
        R["w2_configs"].append({"tag": tag, "conns": conns, "size": size})
        W[f"w2_rps_{tag}"] = {k: summarize(v, "rps") for k, v in res.items()}
        W[f"w2_cpu_{tag}"] = {k: summarize_fn(v, lambda s: (s["srv_user_s"] + s["srv_sys_s"]) * 1e6 / s["requests"]
                                               if s["requests"] else None) for k, v in res.items()}
        W[f"w2_usr_{tag}"] = {k: summarize_fn(v, lambda s: s["srv_user_s"] * 1e6 / s["requests"]
                                               if s["requests"] else None) for k, v in res.items()}
        W[f"w2_sys_{tag}"] = {k: summarize_fn(v, lambda s: s["srv_sys_s"] * 1e6 / s["requests"]
                                               if s["requests"] else None) for k, v in res.items()}
    base = R["w2_configs"][0]["tag"]
    # W1 one connection ping-pong, on two cores and on one.
    log("W1 1 connection ping-pong")
    res = interleaved(bins, servers, cfg["w1_rounds"], lambda _n: ["--conns", 1, "--duration", cfg["w1_dur"],
                                                                   "--warmup", cfg["warm"]], log)
    W["w1_p50_us"] = {k: summarize(v, "p50_us") for k, v in res.items()}
    W["w1_p99_us"] = {k: summarize(v, "p99_us") for k, v in res.items()}
    log("W1 same core (server and client both on CPU 0)")
    same = {EVQ, FLOOR, "libev", "evq-ring"}
    res = interleaved(bins, servers, cfg["w1_rounds"],
                      lambda n: ["--conns", 1, "--duration", cfg["w1_dur"], "--warmup", cfg["warm"]] if n in same else None,
                      log, client_cpu=SERVER_CPU)
    W["w1s_p50_us"] = {k: summarize(v, "p50_us") for k, v in res.items()}
    # W3 open loop at 50% and 80% of the floor's W2 rate (first W2 configuration).
    floor_rps = (W[f"w2_rps_{base}"].get(FLOOR) or {}).get("median")
    w3_conns, w3_dur, w3_rounds = cfg["w3"]
    if floor_rps:
        for pct in (50, 80):
            rate = floor_rps * pct / 100
            log(f"W3 open loop at {pct}% of the floor's rate: {rate:,.0f} req/s over {w3_conns} connections")
            res = interleaved(bins, matrix, w3_rounds, lambda _n: ["--conns", w3_conns, "--rate", f"{rate:.0f}",
                                                                   "--duration", w3_dur, "--warmup", cfg["warm"]], log)
            R[f"w3_rate_{pct}"] = rate
            for q in ("p50", "p99", "p999"):
                W[f"w3_{pct}_{q}_us"] = {k: summarize(v, f"{q}_us") for k, v in res.items()}
            W[f"w3_{pct}_rps"] = {k: summarize(v, "rps") for k, v in res.items()}
    # Instructions per request.
    if have_valgrind:
        n, c = cfg["n"], 100
        log(f"callgrind: Ir(2N)-Ir(N) over N, N={n}, {c} connections x 64 B")
        ir = {}
        for name, binary, extra, _core in servers:
            try:
                a1 = callgrind_ir(bins, binary, extra, n, c, tmp)
                a2 = callgrind_ir(bins, binary, extra, 2 * n, c, tmp)
            except Exception as e:  # noqa: BLE001
                log(f"  {name}: {e}")
                continue
            ir[name] = single((a2 - a1) / n)
            print(f"[{time.time() - t_start:6.1f}s]   {name}: {ir[name]['median']:.1f} Ir/request", file=sys.stderr,
                  flush=True)
        W["w2_ir_per_req"] = ir
    if have_strace:
        n, c = cfg["sn"], 100
        log(f"strace -c -f: syscalls(2N)-syscalls(N) over N, N={n}")
        sc, ctl, detail = {}, {}, {}
        for name, binary, extra, _core in servers:
            try:
                s1 = strace_counts(bins, binary, extra, n, c, tmp)
                s2 = strace_counts(bins, binary, extra, 2 * n, c, tmp)
            except Exception as e:  # noqa: BLE001
                log(f"  {name}: {e}")
                continue
            diff = {k: s2.get(k, 0) - s1.get(k, 0) for k in set(s1) | set(s2)}
            sc[name] = single(sum(diff.values()) / n)
            ctl[name] = single(diff.get("epoll_ctl", 0) / n)
            detail[name] = {k: round(v / n, 3) for k, v in sorted(diff.items()) if v}
        W["w2_syscalls_per_req"] = sc
        W["w2_epoll_ctl_per_req"] = ctl
        R["syscall_detail"] = detail
    # W4 libev's benchmark: evq against libev in one process each, interleaved.
    if os.path.exists(os.path.join(bins, "bench_w4")):
        w4 = cfg["w4"]
        libs = ["evq", "libev"] if os.path.exists(os.path.join(bins, "srv_libev")) else ["evq"]
        R["w4"] = []
        for pipes in w4["pipes"]:
            for timeouts in (False, True):
                label = f"{pipes:,} pairs, 100 active" + (", timeouts" if timeouts else "")
                log(f"W4 {label}")
                samples = {lib: [] for lib in libs}
                for _ in range(w4["rounds"]):
                    for lib in libs:
                        try:
                            samples[lib].append(w4_run(bins, [], lib, pipes, w4["active"], w4["writes"],
                                                       w4["iterations"], timeouts))
                        except Exception as e:  # noqa: BLE001
                            log(f"  {lib}: {e}")
                row = {"label": label, "pipes": pipes, "timeouts": timeouts}
                for lib in libs:
                    row[lib] = {"run_ns_per_event": summarize(samples[lib], "ns_per_event"),
                                "setup_us": summarize(samples[lib], "setup_us")}
                    if have_valgrind:
                        irs = []
                        for it in (1, 2):
                            f = os.path.join(tmp, f"cg.w4.{lib}.{pipes}.{timeouts}.{it}")
                            try:
                                w4_run(bins, ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={f}"],
                                       lib, pipes, w4["active"], w4["writes"], it, timeouts)
                                irs.append(callgrind_total(f))
                            except Exception as e:  # noqa: BLE001
                                log(f"  callgrind {lib}: {e}")
                        if len(irs) == 2:  # one whole iteration (setup, run, teardown) over its events
                            row[lib]["ir_per_event"] = (irs[1] - irs[0]) / (w4["active"] + w4["writes"])
                R["w4"].append(row)
    # W5 Waker.
    rounds, posts = cfg["waker"]
    log("W5 Waker")
    out = subprocess.run([os.path.join(bins, "bench_waker"), "--rounds", str(rounds), "--posts", str(posts)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        log(f"  bench_waker: exit {out.returncode} {out.stderr[:300]}")
    else:
        R["waker"] = json.loads(out.stdout.strip().splitlines()[-1])
        if have_strace:  # eventfd writes per coalesced batch: the posts part alone, under strace
            f = os.path.join(tmp, "st.waker")
            o2 = subprocess.run(["strace", "-f", "-c", "-o", f, os.path.join(bins, "bench_waker"), "--rounds", "0",
                                 "--posts", str(posts // 10)], capture_output=True, text=True, timeout=600)
            if o2.returncode == 0:
                w = json.loads(o2.stdout.strip().splitlines()[-1])
                writes = parse_strace(f).get("write", 0)
                # one of the writes is the JSON line on stdout
                R["waker_strace"] = {"posts": w["posts"], "batches": w["batches"], "writes": max(0, writes - 1)}
    # W6 idle memory.
    for idle_conns in cfg["idle"]:
        log(f"W6 idle RSS at {idle_conns} connections")
        idle = {}
        for name, binary, extra, _core in servers:
            if name in (EVQ, FLOOR, "threads", "libev", "evq-ring"):
                try:
                    idle[name] = single(idle_rss(bins, binary, extra, idle_conns))
                except Exception as e:  # noqa: BLE001 -- report, keep going
                    log(f"  {name}: {e}")
        W[f"w6_rss_{idle_conns}"] = idle
    R["machine"] = machine_info()
    R["elapsed_s"] = round(time.time() - t_start, 1)
    R["date_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    shutil.rmtree(tmp, ignore_errors=True)

    md = render(R)
    with open(os.path.join(out_dir, "results.json"), "w") as fh:
        json.dump(R, fh, indent=2)
    with open(os.path.join(out_dir, "results.md"), "w") as fh:
        fh.write(md)
    if "w2_ir_per_req" in W:
        svg_bars("W2 100 conns: user-space instructions per request", "Ir/request",
                 [(k, v["median"]) for k, v in W["w2_ir_per_req"].items()], os.path.join(out_dir, "ir_per_request.svg"), True)
    svg_bars(f"W2 {base.replace('_', ' conns x ')} B: requests/s (median)", "req/s",
             [(k, v["median"]) for k, v in W[f"w2_rps_{base}"].items() if v], os.path.join(out_dir, "w2_rps.svg"), False)
    print(md)
    print(f"results in {out_dir}", file=sys.stderr)
    if failures and mode == "smoke":  # CI: every server and tool must have run (no timing is checked)
        print("bench smoke: failures:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


def metrics_of(R):
    """(key, label, lower is better) for every table column this run has."""
    W = R["workloads"]
    out = []
    for c in R["w2_configs"]:
        t, lab = c["tag"], f"{c['conns']:,} conns x {size_label(c['size'])}"
        out.append((f"w2_rps_{t}", f"W2 {lab}, req/s", False))
        out.append((f"w2_cpu_{t}", f"W2 {lab}, server CPU µs/req (user+sys)", True))
    c0 = R["w2_configs"][0]
    lab0 = f"{c0['conns']:,} conns x {size_label(c0['size'])}"
    out += [("w2_usr_" + c0["tag"], f"W2 {lab0}, server user µs/req", True),
            ("w2_sys_" + c0["tag"], f"W2 {lab0}, server sys µs/req", True),
            ("w2_ir_per_req", "W2 100 conns x 64 B, user-space Ir/request (callgrind)", True),
            ("w2_syscalls_per_req", "W2 100 conns x 64 B, syscalls/request (strace)", True),
            ("w2_epoll_ctl_per_req", "W2 epoll_ctl/request (steady state)", True),
            ("w1_p50_us", "W1 round trip p50 (µs)", True),
            ("w1_p99_us", "W1 round trip p99 (µs)", True),
            ("w1s_p50_us", "W1 same core, p50 (µs)", True)]
    for pct in (50, 80):
        for q, ql in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
            out.append((f"w3_{pct}_{q}_us", f"W3 open loop {pct}% of floor, {ql} (µs)", True))
    for k in sorted(W):
        if k.startswith("w6_rss_"):
            out.append((k, f"W6 idle RSS B/conn at {int(k[7:]):,}", True))
    return [m for m in out if m[0] in W and W[m[0]]]


def cell(s):
    if s is None or s.get("median") is None:
        return "–"
    if s.get("min") is None or s["n"] < 2:
        return fmt(s["median"], 2 if abs(s["median"]) < 10 else 1)
    spread = (s["max"] - s["min"]) / s["median"] if s["median"] else 0
    flag = " ⚠noisy" if spread > 0.20 else ""
    d = 2 if abs(s["median"]) < 10 else 1
    return f"{fmt(s['median'], d)} [{fmt(s['min'], d)}–{fmt(s['max'], d)}]{flag}"


def compare(d, lower):
    """evq's median, the floor's, and the best peer (name, median)."""
    e = (d.get(EVQ) or {}).get("median")
    f = (d.get(FLOOR) or {}).get("median")
    peers = [(k, v["median"]) for k, v in d.items() if k not in NOT_PEERS and v and v.get("median") is not None]
    best = (min if lower else max)(peers, key=lambda kv: kv[1]) if peers else (None, None)
    return e, f, best


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(R):
    """(target, result, met) rows for issue 8's targets."""
    W = R["workloads"]
    rows = []

    def med_of(key, name):
        return ((W.get(key) or {}).get(name) or {}).get("median")

    sc = med_of("w2_syscalls_per_req", EVQ)
    if sc is not None:
        rows.append(("≤ 2.05 syscalls/request at N ≥ 100", f"{sc:.3f} (floor {med_of('w2_syscalls_per_req', FLOOR):.3f})",
                     sc <= 2.05))
        ctl = med_of("w2_epoll_ctl_per_req", EVQ)
        rows.append(("no epoll_ctl in steady state", f"{ctl:.3f} epoll_ctl/request", ctl < 0.001))
    ir, fir, lir = med_of("w2_ir_per_req", EVQ), med_of("w2_ir_per_req", FLOOR), med_of("w2_ir_per_req", "libev")
    if ir is not None and fir:
        rows.append(("Ir/request ≤ 1.10× floor", f"{ir:.1f} vs floor {fir:.1f} = {ir / fir:.2f}×", ir <= 1.10 * fir))
    if ir is not None and lir:
        rows.append(("Ir/request ≤ libev", f"{ir:.1f} vs libev {lir:.1f} = {ir / lir:.2f}×", ir <= lir))
    base = R["w2_configs"][0]["tag"]
    cpu, fcpu = med_of(f"w2_cpu_{base}", EVQ), med_of(f"w2_cpu_{base}", FLOOR)
    if cpu is not None and fcpu:
        rows.append((f"server CPU/request ≤ 1.05× floor (W2 {base.replace('_', ' conns x ')} B)",
                     f"{cpu:.2f} µs vs floor {fcpu:.2f} µs = {cpu / fcpu:.2f}× (load-sensitive)", cpu <= 1.05 * fcpu))
    p50, fp50 = med_of("w1_p50_us", EVQ), med_of("w1_p50_us", FLOOR)
    if p50 is not None and fp50:
        rows.append(("W1 RTT p50 ≤ 1.05× floor", f"{p50:.1f} µs vs floor {fp50:.1f} µs = {p50 / fp50:.2f}× (load-sensitive)",
                     p50 <= 1.05 * fp50))
    for row in R.get("w4", []):
        e, l = row.get("evq", {}), row.get("libev")
        if not l:
            continue
        te, tl = (e.get("run_ns_per_event") or {}).get("median"), (l.get("run_ns_per_event") or {}).get("median")
        ie, il = e.get("ir_per_event"), l.get("ir_per_event")
        parts, met = [], True
        if te and tl:
            parts.append(f"time {te:,.0f} vs {tl:,.0f} ns/event = {te / tl:.2f}× (load-sensitive)")
            met = met and te <= tl
        if ie and il:
            parts.append(f"Ir {ie:,.0f} vs {il:,.0f}/event = {ie / il:.2f}×")
            met = met and ie <= il
        rows.append((f"W4 {row['label']}: evq ≤ 1.0× libev", "; ".join(parts), met))
    if "waker" in R:
        w = R["waker"]
        rows.append(("W5 ≥ 1,000,000 posts/s", f"{w['posts_per_s']:,.0f} wake()/s", w["posts_per_s"] >= 1e6))
        if "waker_strace" in R:
            ws = R["waker_strace"]
            rows.append(("W5 one eventfd write per coalesced batch",
                         f"{ws['posts']:,} posts, {ws['batches']:,} batches, {ws['writes']:,} writes",
                         ws["writes"] <= max(1, ws["batches"])))
    for k in sorted(W):
        if k.startswith("w6_rss_"):
            e, t = med_of(k, EVQ), med_of(k, "threads")
            if e is None:
                continue
            factor = t / e if t and e > 0 else None
            rows.append((f"W6 ≤ 128 B/idle connection and ≥ 100× less than threads, {int(k[7:]):,} connections",
                         f"evq {e:.0f} B, threads {fmt(t)} B" + (f" ({factor:,.0f}×)" if factor else ""),
                         e <= 128 and (factor is None or factor >= 100)))
    for c in R["w2_configs"]:
        if c["conns"] >= 10000:
            e, _f, best = compare(W.get(f"w2_rps_{c['tag']}", {}), False)
            if e is not None and best[1]:
                rows.append((f"W2 10,000 conns x {size_label(c['size'])} ≥ best peer req/s",
                             f"{e:,.0f} vs {best[0]} {best[1]:,.0f} = {e / best[1]:.2f}× (load-sensitive)", e >= best[1]))
    return rows


def render(R):
    W = R["workloads"]
    metrics = metrics_of(R)
    m = R.get("machine", {})
    pk = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v)
    lines = [f"# evq benchmark results ({R['mode']} mode, {R['date_utc']}, {R['elapsed_s']} s)", "",
             f"Machine: {m.get('nproc')} CPUs, {m.get('cpu')}, Linux {m.get('kernel')}, load average "
             f"{' '.join(m.get('loadavg', []))} at the end. Versions: {pk}.", "",
             "Cells: median [min–max] of interleaved rounds; ⚠noisy = spread > 20% of the median. "
             "Callgrind and strace cells are single runs of a fixed request count (load-independent).", "",
             "## All servers, by metric", "",
             "| metric | " + " | ".join(R["servers"]) + " |",
             "|---|" + "---|" * len(R["servers"])]
    for key, label, _lower in metrics:
        lines.append(f"| {label} | " + " | ".join(cell(W[key].get(n)) for n in R["servers"]) + " |")
    lines += ["", "## evq (epoll backend) against the floor and the best peer", "",
              "| metric | evq | floor | evq/floor | best peer | evq/best peer |",
              "|---|---|---|---|---|---|"]
    for key, label, lower in metrics:
        e, f, best = compare(W[key], lower)
        lines.append(f"| {label} | {fmt(e, 2)} | {fmt(f, 2)} | {fmt(ratio(e, f), 2)} | "
                     f"{best[0] or '–'} {fmt(best[1], 2)} | {fmt(ratio(e, best[1]), 2)} |")
    for pct in (50, 80):
        if f"w3_rate_{pct}" in R:
            lines.append(f"\nW3 {pct}%: {R[f'w3_rate_{pct}']:,.0f} requests/s offered over {R['config']['w3'][0]} "
                         "connections; latency from each request's intended send time.")
    if R.get("w4"):
        lines += ["", "## W4 libev's benchmark (one process, socket pairs, 100 active)", "",
                  "| configuration | evq run ns/event | libev run ns/event | evq/libev | evq Ir/event | libev Ir/event "
                  "| evq/libev (Ir) | evq setup µs | libev setup µs |", "|---|---|---|---|---|---|---|---|---|"]
        for row in R["w4"]:
            e, l = row.get("evq", {}), row.get("libev", {})
            te, tl = (e.get("run_ns_per_event") or {}).get("median"), (l.get("run_ns_per_event") or {}).get("median")
            lines.append(f"| {row['label']} | {cell(e.get('run_ns_per_event'))} | {cell(l.get('run_ns_per_event'))} | "
                         f"{fmt(ratio(te, tl), 2)} | {fmt(e.get('ir_per_event'))} | {fmt(l.get('ir_per_event'))} | "
                         f"{fmt(ratio(e.get('ir_per_event'), l.get('ir_per_event')), 2)} | "
                         f"{cell(e.get('setup_us'))} | {cell(l.get('setup_us'))} |")
    if "waker" in R:
        w = R["waker"]
        lines += ["", "## W5 cross-thread wake (evq Waker)", "",
                  f"- round trip (two threads, two Polls): p50 {w['rtt_p50_us']:.2f} µs, p99 {w['rtt_p99_us']:.2f} µs",
                  f"- coalesced posts: {w['posts_per_s']:,.0f} wake() calls/s ({w['posts']:,} posts seen by the "
                  f"consumer as {w['batches']:,} events)"]
        if "waker_strace" in R:
            ws = R["waker_strace"]
            lines.append(f"- under strace: {ws['posts']:,} posts, {ws['batches']:,} batches seen, {ws['writes']:,} "
                         "eventfd write(2) calls")
    rows = targets(R)
    if rows:
        lines += ["", "## Targets (issue 8)", "", "| target | this run | met |", "|---|---|---|"]
        for t, res, met in rows:
            lines.append(f"| {t} | {res} | {'met' if met else '**missed**'} |")
    if "syscall_detail" in R:
        lines += ["", "## Syscalls per request, by call (steady state, strace -c -f difference)", ""]
        for k, v in R["syscall_detail"].items():
            lines.append(f"- {k}: " + ", ".join(f"{s} {c}" for s, c in v.items()))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
