#!/usr/bin/env python3
"""Drives the long-running edgesync commands (node, watch, demo) and status
as real processes on loopback, in temporary directories: exact output
formats, exit codes and signals (tools/cli.h has the exit code contract).

Every wait is a poll against a deadline; no sleep decides a result.

Usage: node_test.py EDGESYNC_BINARY
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BINARY = None  # set from argv in main
HEX64 = re.compile(r"^[0-9a-f]{64}$")
NODE_LINE = re.compile(r"^node ([0-9a-f]{64}) listening on (127\.0\.0\.1:[0-9]+)$")
DEADLINE_S = 20  # for anything that should take a few sync intervals


class Lines:
    """Reads a child's stdout line by line with a deadline per line."""

    def __init__(self, proc):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""

    def next(self, timeout=DEADLINE_S):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line within {timeout} s; have {self.buf!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise AssertionError(f"output ended; have {self.buf!r}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def rest(self):
        """Everything after the process exited."""
        os.set_blocking(self.fd, True)
        out = self.buf + self.proc.stdout.read()
        self.buf = b""
        return out.decode()


class NodeCli(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="edgesync-node-")
        self.tmp = self._tmp.name
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run_cli(self, *args, rc=0, timeout=30):
        p = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, rc,
                         f"edgesync {' '.join(args)}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p.stdout, p.stderr

    def out(self, *args):
        stdout, stderr = self.run_cli(*args)
        self.assertEqual(stderr, "")
        return stdout

    def fails(self, *args, line):
        _, stderr = self.run_cli(*args, rc=1)
        self.assertEqual(stderr.count("\n"), 1, stderr)
        self.assertRegex(stderr, "^edgesync: " + line)

    def usage_error(self, *args, line="."):
        _, stderr = self.run_cli(*args, rc=2)
        self.assertEqual(stderr.count("\n"), 1, stderr)
        self.assertRegex(stderr, "^edgesync: " + line)

    def spawn(self, *args):
        p = subprocess.Popen([BINARY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p, Lines(p)

    def stop(self, proc, sig=signal.SIGTERM):
        """Sends `sig`; asserts exit 0 and an empty stderr."""
        proc.send_signal(sig)
        try:
            proc.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.fail(f"{proc.args} did not stop on {sig.name}")
        stderr = proc.stderr.read().decode()
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertEqual(stderr, "")

    def replica(self, name):
        d = self.path(name)
        key = self.out("init", d).rstrip("\n")
        self.assertRegex(key, HEX64)
        return d, key

    def pair(self):
        a, ka = self.replica("a")
        b, kb = self.replica("b")
        self.out("trust", a, kb)
        self.out("trust", b, ka)
        return a, ka, b, kb

    def start_node(self, d, *flags):
        proc, lines = self.spawn("node", d, "--listen", "127.0.0.1:0", "--sync-interval-ms", "200",
                                 *flags)
        first = lines.next()
        m = NODE_LINE.match(first)
        self.assertIsNotNone(m, first)
        return proc, lines, m.group(1), m.group(2)

    def watch_ready(self, d, lines, prefix=""):
        """Commits on `d` until the running watch on `d` prints one: from then
        on it sees every change. Returns the change line it printed."""
        for i in range(100):
            self.out("put", d, prefix + "probe", "/n", str(i))
            try:
                return json.loads(lines.next(timeout=0.5))
            except AssertionError:
                continue
        self.fail("watch printed nothing")

    def next_change(self, lines, doc):
        """The next change line of `doc` (skipping the probes of watch_ready,
        which gossip may carry to the other replica at any time)."""
        for _ in range(100):
            line = lines.next()
            change = json.loads(line)
            if change["doc"] == doc:
                return line
            self.assertTrue(change["doc"].endswith("probe"), line)
        self.fail(f"no change of {doc}")

    def wait_for(self, fn, what):
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if fn():
                return
            time.sleep(0.05)
        self.fail(f"{what}: not within {DEADLINE_S} s")

    # ---------------------------------------------------------------- demo

    def test_demo_converges_and_prints_equal_hashes(self):
        stdout, stderr = self.run_cli("demo", "--nodes", "3", "--seconds", "3", timeout=120)
        self.assertEqual(stderr, "")
        lines = stdout.splitlines()
        for phase in ["== 1. start", "== 2. write", "== 3. cut n2 off", "== 4. write on both",
                      "== 5. heal", "== 6. result"]:
            self.assertTrue(any(l.startswith(phase) for l in lines), phase)
        # Before healing the cut-off node differs on the document it wrote
        # concurrently; the final table has every hash equal.
        tables = [i for i, l in enumerate(lines) if l.startswith("  state hashes")]
        self.assertEqual(len(tables), 2, stdout)
        before, final = tables
        self.assertRegex(lines[before + 2], r"^  config +([0-9a-f]{12})  \1  [0-9a-f]{12}  differ$")
        self.assertEqual(lines[final + 1].split(), ["document", "n0", "n1", "n2"])
        rows = lines[final + 2:final + 6]
        self.assertEqual([r.split()[0] for r in rows],
                         ["config", "fleet/robot-7", "plant/pump-1", "plant/pump-2"])
        for row in rows:
            doc, *hashes, verdict = row.split()
            self.assertEqual(len(hashes), 3, row)
            self.assertRegex(hashes[0], r"^[0-9a-f]{12}$")
            self.assertEqual(set(hashes), {hashes[0]}, row)
            self.assertEqual(verdict, "equal", row)
        self.assertIn("  converged: all 3 nodes hold equal state hashes for all 4 documents",
                      lines)
        self.assertTrue(any(re.match(r"^  converged [0-9.]+ m?s after healing", l) for l in lines),
                        stdout)
        # Concurrent increments on both sides of the cut both count.
        self.assertTrue(any(re.match(r'^  plant/pump-1 .*"starts":110', l) for l in lines), stdout)

    def test_demo_interrupted_cleans_up(self):
        scratch = self.path("scratch")
        os.mkdir(scratch)
        p = subprocess.Popen([BINARY, "demo", "--nodes", "2", "--seconds", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, TMPDIR=scratch))
        self.procs.append(p)
        lines = Lines(p)
        while not lines.next().startswith("== 2."):
            pass
        self.assertEqual(len(os.listdir(scratch)), 1)  # the demo's directory
        p.send_signal(signal.SIGINT)
        p.wait(timeout=DEADLINE_S)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.read().decode(), "edgesync: demo: interrupted\n")
        self.assertEqual(os.listdir(scratch), [])

    # ---------------------------------------------------------------- node

    def test_two_node_processes_gossip_a_write_made_by_another_process(self):
        a, ka, b, kb = self.pair()
        node_a, out_a, key_a, addr_a = self.start_node(a, "--log-peers")
        self.assertEqual(key_a, ka)
        node_b, out_b, key_b, _ = self.start_node(b, "--peer", addr_a, "--log-peers")
        self.assertEqual(key_b, kb)
        self.assertRegex(out_b.next(), f"^peer connected: .* key {ka}$")
        watch_b, lines_b = self.spawn("watch", b)
        self.watch_ready(b, lines_b)
        watch_a, lines_a = self.spawn("watch", a)
        self.watch_ready(a, lines_a)

        # A write by another process into A's directory, while A's node runs.
        self.out("put", a, "pump-7", "/rpm", "1450")
        self.assertEqual(json.loads(self.next_change(lines_a, "pump-7")),
                         {"doc": "pump-7", "paths": ["/rpm"], "remote": False, "author": ka,
                          "paths_truncated": False})
        self.wait_for(lambda: self.out("get", b, "pump-7") == '{"rpm":1450}\n', "put reached B")
        # B's watch prints the change its node applied, in the C API's form.
        self.assertEqual(self.next_change(lines_b, "pump-7"), '{"doc":"pump-7","paths":["/rpm"],"remote":true,"author":"'
                         + ka + '","paths_truncated":false}')
        self.assertEqual(self.out("digest", a, "pump-7"), self.out("digest", b, "pump-7"))

        self.stop(watch_a)
        self.stop(watch_b, signal.SIGINT)
        self.stop(node_a)
        self.stop(node_b, signal.SIGINT)
        self.assertRegex(out_b.rest(),
                         r"stopped: [1-9][0-9]* batches applied, [0-9]+ pushes, [0-9]+ rounds "
                         r"synced, [0-9]+ bytes sent, [1-9][0-9]* bytes received\n$")
        # Nothing was lost by stopping.
        self.assertEqual(self.out("get", b, "pump-7", "/rpm"), "1450\n")

    def test_node_failures_are_one_line(self):
        a, _ = self.replica("a")
        self.fails("node", a, "--listen", "nonsense", line=r'node: --listen "nonsense" is not')
        self.fails("node", a, "--listen", "127.0.0.1:notaport",
                   line=r'node: --listen "127.0.0.1:notaport" is not HOST:PORT')
        self.fails("node", a, "--listen", "127.0.0.1:0", "--peer", "bad",
                   line=r'node: --peer "bad" is not HOST:PORT')
        self.fails("node", a, "--listen", "127.0.0.1:0", "--peer", "127.0.0.1:0", line="node: ")
        self.fails("node", a, "--listen", "host.invalid:0", line="node: ")
        self.fails("node", self.path("missing"), "--listen", "127.0.0.1:0",
                   line="node: no replica in")
        self.assertFalse(os.path.exists(self.path("missing")))
        # The port is taken by a running node.
        b, _ = self.replica("b")
        node_b, _, _, addr_b = self.start_node(b)
        self.fails("node", a, "--listen", addr_b, line="node: ")
        self.stop(node_b)

    def test_usage_errors(self):
        a, _ = self.replica("a")
        self.usage_error("node", a, line="node: ")
        self.usage_error("node", a, "--listen", "127.0.0.1:0", "--fanout", "0", line="node: ")
        self.usage_error("node", a, "--listen", "127.0.0.1:0", "--sync-interval-ms", "x",
                         line="node: ")
        self.usage_error("node", a, "--listen", "127.0.0.1:0", "--reconnect-max-ms", "100",
                         line="node: ")
        self.usage_error("node", a, "--listen", "127.0.0.1:0", "--bogus", line="node: ")
        self.usage_error("watch", line="watch: ")
        self.usage_error("watch", a, "p", "extra", line="watch: ")
        self.usage_error("status", line="status: ")
        self.usage_error("status", a, "extra", line="status: ")
        self.usage_error("demo", "--nodes", "1", line="demo: ")
        self.usage_error("demo", "--seconds", "0", line="demo: ")
        self.usage_error("demo", "--nodes", "x", line="demo: ")
        for command in ["node", "watch", "status", "demo"]:
            self.assertIn("Usage", self.out(command, "--help"))

    # ---------------------------------------------------------------- watch

    def test_watch_filters_by_prefix_and_stops_on_signal(self):
        a, ka = self.replica("a")
        watch, lines = self.spawn("watch", a, "plant/")
        self.watch_ready(a, lines, prefix="plant/")
        self.out("put", a, "other", "/x", "1")
        self.out("incr", a, "plant/p1", "/starts", "2")
        self.out("add", a, "plant/p1", "/alarms", '"hot"')
        self.assertEqual(json.loads(self.next_change(lines, "plant/p1")),
                         {"doc": "plant/p1", "paths": ["/starts"], "remote": False, "author": ka,
                          "paths_truncated": False})
        self.assertEqual(json.loads(self.next_change(lines, "plant/p1"))["paths"], ["/alarms"])
        self.stop(watch)
        self.assertEqual(lines.rest(), "")

    def test_watch_needs_a_replica(self):
        self.fails("watch", self.path("missing"), line="watch: no replica in")

    # ---------------------------------------------------------------- status

    def test_status(self):
        a, ka, b, kb = self.pair()
        self.out("put", b, "d1", "/x", "1")
        self.out("export", b, self.path("b.bundle"))
        self.out("import", a, self.path("b.bundle"))
        self.out("put", a, "d1", "/y", "2")
        self.out("put", a, "long/document-name", "/z", "3")
        lines = self.out("status", a).splitlines()
        self.assertEqual(lines[0], "key            " + ka)
        self.assertEqual(sorted(lines[1:3]),
                         sorted(["trusted        " + ka + " (this replica)",
                                 "trusted        " + kb]))
        self.assertEqual(lines[3], "documents      2")
        self.assertEqual(lines[4].split(), ["document", "state", "hash", "version", "vector"])
        doc, digest, vv = lines[5].split()
        self.assertEqual((doc, digest + "\n"), ("d1", self.out("digest", a, "d1")))
        self.assertEqual(json.loads(vv), {ka: [[1, 1]], kb: [[1, 1]]})
        doc, digest, vv = lines[6].split()
        self.assertEqual(doc, "long/document-name")
        self.assertEqual(json.loads(vv), {ka: [[1, 1]]})  # seqs count per document
        self.assertEqual(lines[7], "batches stored 3")
        self.assertRegex(lines[8], r"^batches held   0 ")
        self.assertEqual(lines[9], "equivocations  0")
        self.assertRegex(lines[10], r"^changes        3 ")
        self.assertRegex(lines[11], r"^store          [0-9.]+ [KM]iB used, map ")
        self.assertRegex(lines[12], r"^last time      [1-9][0-9]{12} \(ms since the epoch")
        self.assertEqual(len(lines), 13)
        self.fails("status", self.path("missing"), line="status: no replica in")


def main():
    global BINARY
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
