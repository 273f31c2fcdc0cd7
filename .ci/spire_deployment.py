"""SPIRE for the Python of .ci: spire-up (tests/fake-agent), the tests' own
deployment, so that tests, benchmarks and the code-ordering runs start it
the same way; and the registration entries they need.
"""
import json
import os
import subprocess
import sys


class Deployment:
    """spire-up running: `info` is what it printed (the server and agent
    sockets, the node id, the trust domain, the agent's pid)."""

    def __init__(self, spire_up):
        self.process = subprocess.Popen(
            [spire_up], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "SPIFFE_HELPER_SPIRE_LOG_LEVEL": "WARN"})
        line = self.process.stdout.readline()
        if not line:
            sys.exit("spire-up did not start SPIRE")
        self.info = json.loads(line)

    def entry(self, server_bin, path, *extra):
        """Registers spiffe://<trust domain><path> for this uid; the entry id."""
        info = self.info
        out = subprocess.run(
            [server_bin, "entry", "create", "-socketPath", info["server_socket"],
             "-parentID", info["node_id"], "-spiffeID", f"spiffe://{info['trust_domain']}{path}",
             "-selector", f"unix:uid:{os.geteuid()}", *extra],
            check=True, capture_output=True, text=True).stdout
        return next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Entry ID"))

    def stop(self):
        """spire-up stops SPIRE when its stdin closes."""
        self.process.stdin.close()
        self.process.wait(30)
