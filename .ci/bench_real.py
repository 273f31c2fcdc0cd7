#!/usr/bin/env python3
"""Side-by-side figures (nothing is asserted): this helper and the Go
spiffe-helper v0.11.0 against a real SPIRE server and agent, measured
interleaved or at the same time so that the machine's noise hits both:
stripped binary size; one-shot wall time (median of --runs); daemon start
to first files written (median); idle RSS and CPU over --idle-secs of a
daemon with X.509, one JWT-SVID, the JWT bundle and the health server; CPU
per rotation while SPIRE rotates a short-lived SVID for --rotation-secs;
with --fleet N, N daemons of each helper against the one agent: their
total RSS and the agent's CPU over --rotation-secs of rotations.

SPIRE is the tests' own deployment (spire-up, tests/fake-agent), so the
tests and the benchmarks start it the same way. Run through .ci/bench-real.
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from spire_deployment import Deployment

bin_dir, ours_bin, spire_up = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
args = sys.argv[4:]
opts = {"idle-secs": 60, "rotation-secs": 60, "runs": 11, "fleet": 0}
i = 0
while i < len(args):
    a = args[i].lstrip("-")
    if a == "quick":
        opts.update({"idle-secs": 10, "rotation-secs": 20, "runs": 5})
        i += 1
    elif a in opts and i + 1 < len(args):
        opts[a] = int(args[i + 1])
        i += 2
    else:
        sys.exit(f"bench-real: unknown argument {args[i]}")

server_bin = os.path.join(bin_dir, "spire-server")
agent_bin = os.path.join(bin_dir, "spire-agent")
go_bin = os.path.join(bin_dir, "spiffe-helper-go")
for p in (server_bin, agent_bin, go_bin, ours_bin):
    if not os.access(p, os.X_OK):
        sys.exit(f"bench-real: {p} is missing (install Go and run .ci/real-components, or cargo build --release)")
HELPERS = [("ours", ours_bin), ("go", go_bin)]

root = tempfile.mkdtemp(prefix="bench-real", dir="/tmp")
procs = []

def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port != 8081:
            return port

def spawn(cmd, log, **kw):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(log, "ab"),
                         stderr=subprocess.STDOUT, **kw)
    procs.append(p)
    return p

def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

def cleanup():
    for p in reversed(procs):
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(root, ignore_errors=True)

def cli(program, *a):
    return subprocess.run([program, *a], check=True, capture_output=True, text=True).stdout

def wait(what, pred, timeout=90):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    sys.exit(f"bench-real: timed out waiting for {what}")

def ok(cmd):
    return subprocess.run(cmd, capture_output=True).returncode == 0

def count_in(d, mark):
    """How many times a helper's log says `mark`."""
    with open(f"{d}/helper.log", errors="replace") as f:
        return f.read().count(mark)


def fleet(n, marks):
    """N daemons of one helper at a time against the agent: their total
    RSS, and the CPU the agent and they use while SPIRE rotates the
    short-lived SVID for --rotation-secs."""
    print(f"\nfleet: {n} daemons of each helper against one agent (X.509, one JWT-SVID, the JWT bundle), one helper at a time:")
    for name, b in HELPERS:
        group = []
        for i in range(n):
            d = workdir(f"fleet-{name}-{i}", True)
            group.append((spawn([b, "-config", "helper.conf"], f"{d}/helper.log", cwd=d, env=env), d))

        def written():
            return all(os.path.exists(f"{d}/certs/{f}") for _, d in group for f in FILES)

        wait(f"{n} {name} daemons to write their files", written, timeout=300)
        time.sleep(2)
        rss = sum(status_kb(p.pid, "VmRSS:") for p, _ in group)
        agent0 = cpu_snapshot(agent_pid)
        helpers0 = [cpu_snapshot(p.pid) for p, _ in group]
        rotations0 = sum(count_in(d, marks[name]) for _, d in group)
        t0 = time.monotonic()
        time.sleep(opts["rotation-secs"])
        span = time.monotonic() - t0
        agent_ms = cpu_ms(agent0, cpu_snapshot(agent_pid))
        helpers_ms = sum(cpu_ms(c0, cpu_snapshot(p.pid)) for c0, (p, _) in zip(helpers0, group))
        rotations = sum(count_in(d, marks[name]) for _, d in group) - rotations0
        print(f"  {name:5} total RSS {rss / 1024:7.1f} MB ({rss / 1024 / n:.2f} MB each); "
              f"over {span:.0f} s: {rotations} rotations, agent CPU {agent_ms:.0f} ms, "
              f"the {n} helpers' CPU {helpers_ms:.0f} ms")
        for p, _ in group:
            stop(p)


# === a trust domain: the tests' own SPIRE deployment (spire-up) ===
deployment = Deployment(spire_up)
try:
    td = deployment.info
    ssock, asock, agent_pid = td["server_socket"], td["agent_socket"], td["agent_pid"]
    domain = td["trust_domain"]

    def entry(path, *extra):
        return deployment.entry(server_bin, path, *extra)

    def served(id_):
        out = subprocess.run([agent_bin, "api", "fetch", "x509", "-socketPath", asock],
                             capture_output=True, text=True).stdout
        ids = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.strip().startswith("SPIFFE ID:")]
        return ids == [id_]

    stable = entry("/stable", "-jwtSVIDTTL", "3600")
    wait("the first entry", lambda: served(f"spiffe://{domain}/stable"))

    FILES = ["svid.pem", "svid_key.pem", "svid_bundle.pem", "jwt_bundle.json", "db.token"]

    def workdir(name, daemon, port=None):
        d = tempfile.mkdtemp(prefix=name, dir=root)
        os.mkdir(f"{d}/certs")
        health = f'''health_checks {{
  listener_enabled = true
  bind_port = {port}
}}''' if port else ""
        with open(f"{d}/helper.conf", "w") as f:
            f.write(f'''agent_address = "{asock}"
cert_dir = "certs"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [{{ jwt_audience = "db", jwt_svid_file_name = "db.token" }}]
daemon_mode = {"true" if daemon else "false"}
{health}
''')
        return d

    def cpu_snapshot(pid):
        """CPU time of each live thread, ns (/proc/<pid>/task/*/schedstat)."""
        snap = {}
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                        snap[t] = int(f.read().split()[0])
                except (FileNotFoundError, ProcessLookupError):
                    pass
        except FileNotFoundError:
            pass
        return snap

    def cpu_ms(a, b):
        """CPU used between two snapshots by the threads alive at the second
        (a thread that exited in between takes its time with it)."""
        return sum(v - a.get(t, 0) for t, v in b.items()) / 1e6

    def status_kb(pid, key):
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith(key):
                    return int(ln.split()[1])
        return 0

    def ready(port):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2).status == 200
        except Exception:
            return False

    def med(xs):
        return statistics.median(xs)

    env = {k: v for k, v in os.environ.items() if k not in ("SPIFFE_ENDPOINT_SOCKET", "SPIRE_AGENT_ADDRESS")}
    env["RUST_LOG"] = "info"

    print("# spiffe-helper (ours) vs the Go spiffe-helper v0.11.0 against SPIRE v1.13.3")
    print(f"# ours: {ours_bin}")
    print(f"# go:   {go_bin}")
    print(f"# {os.cpu_count()} CPUs; idle {opts['idle-secs']} s, rotation {opts['rotation-secs']} s, {opts['runs']} runs\n")

    # --- size ---
    print("binary size (as built; stripped copies with `strip` when present):")
    for name, b in HELPERS:
        size = os.path.getsize(b)
        stripped = size
        if shutil.which("strip"):
            tmp = f"{root}/{name}.stripped"
            if subprocess.run(["strip", "-o", tmp, b], capture_output=True).returncode == 0:
                stripped = os.path.getsize(tmp)
        print(f"  {name:5} {size / 1e6:7.2f} MB   stripped {stripped / 1e6:7.2f} MB")

    # --- one-shot: on the disk (this helper fsyncs, the Go one does not)
    # and on tmpfs, where fsync costs nothing ---
    places = [("disk", root)]
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        places.append(("tmpfs", tempfile.mkdtemp(prefix="bench-real", dir="/dev/shm")))
    for place, base in places:
        dirs = {}
        for name, _ in HELPERS:
            d = workdir(f"oneshot-{name}", False)
            if base != root:
                moved = tempfile.mkdtemp(prefix=f"oneshot-{name}", dir=base)
                shutil.copytree(d, moved, dirs_exist_ok=True)
                d = moved
            dirs[name] = d
        times = {name: [] for name, _ in HELPERS}
        for r in range(opts["runs"] + 1):
            order = HELPERS if r % 2 == 0 else HELPERS[::-1]
            for name, b in order:
                t0 = time.perf_counter()
                rc = subprocess.run([b, "-config", "helper.conf"], cwd=dirs[name], env=env,
                                    stdin=subprocess.DEVNULL, capture_output=True).returncode
                dt = time.perf_counter() - t0
                if rc != 0:
                    sys.exit(f"bench-real: {name} one-shot failed ({rc})")
                if r > 0:  # the first round warms the agent's caches
                    times[name].append(dt * 1000)
        print(f"\none-shot wall time on {place} ({base}), X.509 + JWT bundle + one JWT-SVID "
              f"(median of {opts['runs']}, min-max):")
        for name, _ in HELPERS:
            t = times[name]
            print(f"  {name:5} {med(t):7.1f} ms   ({min(t):.1f}-{max(t):.1f})")
        if base != root:
            shutil.rmtree(base, ignore_errors=True)

    # --- start to first files ---
    starts = {name: [] for name, _ in HELPERS}
    for r in range(max(3, opts["runs"] // 2)):
        order = HELPERS if r % 2 == 0 else HELPERS[::-1]
        for name, b in order:
            d = workdir(f"start-{name}", True)
            t0 = time.perf_counter()
            p = spawn([b, "-config", "helper.conf"], f"{d}/helper.log", cwd=d, env=env)
            paths = [f"{d}/certs/{f}" for f in FILES]
            end = time.monotonic() + 60
            while not all(os.path.exists(x) and os.path.getsize(x) > 0 for x in paths):
                if time.monotonic() > end:
                    sys.exit(f"bench-real: {name} never wrote its files")
                time.sleep(0.0005)
            starts[name].append((time.perf_counter() - t0) * 1000)
            stop(p)
    print(f"\ndaemon start to all five files written (median of {len(starts['ours'])}, min-max):")
    for name, _ in HELPERS:
        t = starts[name]
        print(f"  {name:5} {med(t):7.1f} ms   ({min(t):.1f}-{max(t):.1f})")

    # --- idle: both daemons at once ---
    running = {}
    for name, b in HELPERS:
        port = free_port()
        d = workdir(f"idle-{name}", True, port)
        running[name] = (spawn([b, "-config", "helper.conf"], f"{d}/helper.log", cwd=d, env=env), port, d)
    for name, (p, port, _) in running.items():
        wait(f"{name} ready", lambda: ready(port))
    time.sleep(2)
    before = {n: (cpu_snapshot(p.pid), time.monotonic()) for n, (p, _, _) in running.items()}
    rss = {n: (status_kb(p.pid, "VmRSS:"), status_kb(p.pid, "RssAnon:"), status_kb(p.pid, "RssFile:"))
           for n, (p, _, _) in running.items()}
    time.sleep(opts["idle-secs"])
    idle_rate = {}
    print("\nidle daemon (X.509, one JWT-SVID, JWT bundle, health server), both at once:")
    for name, (p, _, _) in running.items():
        c0, t0 = before[name]
        used_ms = cpu_ms(c0, cpu_snapshot(p.pid))
        idle_rate[name] = used_ms / (time.monotonic() - t0)
        vm, anon, fil = rss[name]
        print(f"  {name:5} RSS {vm / 1024:6.1f} MB (anon {anon / 1024:.1f}, file {fil / 1024:.1f}), "
              f"CPU {used_ms:8.3f} ms over {opts['idle-secs']} s, threads {len(os.listdir(f'/proc/{p.pid}/task'))}")
    for name, (p, _, _) in running.items():
        stop(p)

    # --- rotation: SPIRE renews a 20 s SVID every few seconds ---
    cli(server_bin, "entry", "delete", "-socketPath", ssock, "-entryID", stable)
    entry("/rotating", "-x509SVIDTTL", "20", "-jwtSVIDTTL", "3600")
    wait("the rotating entry", lambda: served(f"spiffe://{domain}/rotating"))
    running = {}
    for name, b in HELPERS:
        port = free_port()
        d = workdir(f"rot-{name}", True, port)
        running[name] = (spawn([b, "-config", "helper.conf"], f"{d}/helper.log", cwd=d, env=env), port, d)
    for name, (p, port, _) in running.items():
        wait(f"{name} ready", lambda: ready(port))
    time.sleep(1)
    marks = {"ours": "X.509 SVID written", "go": "X.509 certificates updated"}
    def count(name):
        with open(f"{running[name][2]}/helper.log", errors="replace") as f:
            return f.read().count(marks[name])
    before = {n: (cpu_snapshot(p.pid), count(n), time.monotonic()) for n, (p, _, _) in running.items()}
    time.sleep(opts["rotation-secs"])
    print(f"\nrotations over {opts['rotation-secs']} s (SPIRE's pace, both daemons at once):")
    for name, (p, _, _) in running.items():
        c0, n0, t0 = before[name]
        used_ms = cpu_ms(c0, cpu_snapshot(p.pid))
        n = count(name) - n0
        span = time.monotonic() - t0
        if n:
            net = max(0.0, used_ms - idle_rate[name] * span)
            print(f"  {name:5} {n} rotations, CPU {used_ms:.2f} ms: {used_ms / n:.2f} ms per rotation "
                  f"({net / n:.2f} ms after the idle rate)")
        else:
            print(f"  {name:5} no rotation seen in {span:.0f} s")
    for name, (p, _, _) in running.items():
        stop(p)

    # --- fleet: N daemons of each helper against the one agent ---
    if opts["fleet"]:
        fleet(opts["fleet"], marks)
finally:
    cleanup()
    deployment.stop()
