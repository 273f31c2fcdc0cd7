#!/usr/bin/env python3
"""The functions the helper executes in its usual runs, for the linker's
symbol ordering (.cargo/link-ordered). Run through .ci/hot-functions.

Each run is the helper under callgrind against a real SPIRE agent (the
tests' deployment, spire-up): a daemon with X.509, the JWT bundle, two
JWT-SVIDs, the health server probed on every path, a pid file signalled
on renewal, through at least one rotation of a short-lived SVID; the same
with `cmd` supervised instead of the pid file; and a one-shot run. Then
the runs of .ci/bench against the fake Workload API. The list is every
function callgrind saw, by its symbol name, sorted.
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from spire_deployment import Deployment

bin_dir, helper, spire_up, bench, out_path = sys.argv[1:6]
server_bin = os.path.join(bin_dir, "spire-server")
work = tempfile.mkdtemp(prefix="hot-functions")
# Profiles are also written every so many basic blocks: the benchmark
# stops some of its daemons with SIGKILL, which leaves no final profile.
CALLGRIND = ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-every-bb=50000",
             f"--callgrind-out-file={work}/callgrind.%p.out"]


def under_callgrind(args, cwd):
    return subprocess.Popen([*CALLGRIND, helper, *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def workdir(name, agent_socket, body):
    d = os.path.join(work, name)
    os.makedirs(f"{d}/certs")
    with open(f"{d}/helper.conf", "w") as f:
        f.write(f'agent_address = "{agent_socket}"\ncert_dir = "certs"\n'
                'svid_file_name = "svid.pem"\nsvid_key_file_name = "svid_key.pem"\n'
                'svid_bundle_file_name = "svid_bundle.pem"\n'
                'jwt_bundle_file_name = "jwt_bundle.json"\n'
                'jwt_svids = [{ jwt_audience = "db", jwt_svid_file_name = "db.token" },\n'
                '  { jwt_audience = "cache", jwt_svid_file_name = "cache.token" }]\n' + body)
    return d


def serial(d):
    try:
        with open(f"{d}/certs/svid.pem") as f:
            return f.read()
    except FileNotFoundError:
        return None


def daemon(name, agent_socket, port, extra, limit=180):
    """A daemon probed on every health path until SPIRE has rotated its
    SVID once, then stopped by SIGTERM (callgrind writes its profile)."""
    d = workdir(name, agent_socket, f"daemon_mode = true\nhealth_checks {{\n"
                f"  listener_enabled = true\n  bind_port = {port}\n}}\n{extra}")
    p = under_callgrind(["-config", "helper.conf"], d)
    end = time.monotonic() + limit
    first = None
    while time.monotonic() < end:
        for path in ("/ready", "/live", "/metrics", "/status"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
            except OSError:
                pass
        now = serial(d)
        if first is None:
            first = now
        elif now and now != first:
            break
        time.sleep(1)
    else:
        sys.exit(f"hot-functions: {name}: no rotation seen in {limit} s")
    p.send_signal(signal.SIGTERM)
    if p.wait(120) != 0:
        sys.exit(f"hot-functions: {name} exited {p.returncode}")


deployment = Deployment(spire_up)
try:
    deployment.entry(server_bin, "/hot", "-x509SVIDTTL", "20", "-jwtSVIDTTL", "3600")
    asock = deployment.info["agent_socket"]
    # The entry reaches the agent within its sync interval: the one-shot
    # run waits for it (oneshot_max_wait).
    d = workdir("oneshot", asock, "daemon_mode = false\noneshot_max_wait = \"60s\"\n")
    if under_callgrind(["-config", "helper.conf"], d).wait(300) != 0:
        sys.exit("hot-functions: the one-shot run failed")
    with subprocess.Popen(["sleep", "600"]) as signalled:
        with open(f"{work}/signalled.pid", "w") as f:
            f.write(str(signalled.pid))
        daemon("pid-file", asock, 18091,
               f'pid_file_name = "{work}/signalled.pid"\nrenew_signal = "SIGHUP"\n')
        signalled.kill()
    daemon("cmd", asock, 18092, 'cmd = "/bin/sleep"\ncmd_args = "600"\nrenew_signal = "SIGHUP"\n')
    # The benchmark's runs against the fake Workload API (.ci/bench): a
    # log level from RUST_LOG, hundreds of rotations on a disk and on tmpfs
    # (what runs now and then: trimming the heap, growing a table), a small
    # federation, a hundred JWT-SVID entries.
    wrapper = os.path.join(work, "spiffe-helper")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec " + " ".join(CALLGRIND) + f' {helper} "$@"\n')
    os.chmod(wrapper, 0o755)
    run = subprocess.run([bench, "--idle-secs", "2", "--rotations", "300", "--soak", "300",
                          "--federation", "5"], env={**os.environ, "SPIFFE_HELPER_BIN": wrapper},
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        sys.exit(f"hot-functions: the benchmark failed:\n{run.stdout}\n{run.stderr[-4000:]}")

    names = set()
    for path in glob.glob(f"{work}/callgrind.*.out*"):
        with open(path, errors="replace") as f:
            for line in f:
                # "fn=(id) name" the first time a function appears.
                if line.startswith(("fn=(", "cfn=(")) and ") " in line:
                    names.add(line.split(") ", 1)[1].strip())
    # Only the helper's own symbols (callgrind also names valgrind's).
    symbols = subprocess.run(["nm", "--defined-only", helper], check=True,
                             capture_output=True, text=True).stdout.split()
    names &= set(symbols)
    with open(out_path, "w") as f:
        f.write("# The functions a running helper executes, for the linker's symbol\n"
                "# ordering: made by .ci/hot-functions, read by .cargo/link-ordered.\n")
        f.writelines(f"{n}\n" for n in sorted(names))
    print(f"hot-functions: {len(names)} functions in {out_path}")
finally:
    deployment.stop()
    shutil.rmtree(work, ignore_errors=True)
