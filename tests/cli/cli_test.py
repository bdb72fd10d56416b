#!/usr/bin/env python3
"""Drives the real edgesync binary in temporary directories and checks its
exact outputs and exit codes (tools/cli.h has the exit code contract).

Usage: cli_test.py EDGESYNC_BINARY
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

BINARY = None  # set from argv in main


def kernel_clock_synchronised():
    """Whether adjtimex(2) reports the clock synchronised (as the replica asks)."""
    import ctypes
    TIME_ERROR, STA_UNSYNC = 5, 0x40

    class Timex(ctypes.Structure):  # struct timex: modes, then longs; status is the 7th field
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                    ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                    ("status", ctypes.c_int), ("rest", ctypes.c_long * 32)]

    tx = Timex()
    state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(tx))
    return state not in (-1, TIME_ERROR) and not tx.status & STA_UNSYNC
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Cli(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="edgesync-cli-")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run_cli(self, *args, rc=0):
        """Runs edgesync ARGS; asserts the exit code; returns (stdout, stderr)."""
        p = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, rc,
                         f"edgesync {' '.join(args)}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p.stdout, p.stderr

    def out(self, *args):
        """stdout of a command that must succeed silently on stderr."""
        stdout, stderr = self.run_cli(*args)
        self.assertEqual(stderr, "")
        return stdout

    def fails(self, *args, line):
        """The command exits 1 with exactly one stderr line matching `line`."""
        _, stderr = self.run_cli(*args, rc=1)
        self.assertEqual(stderr.count("\n"), 1, stderr)
        self.assertRegex(stderr, "^edgesync: " + line)

    def usage_error(self, *args, line="."):
        _, stderr = self.run_cli(*args, rc=2)
        self.assertEqual(stderr.count("\n"), 1, stderr)
        self.assertRegex(stderr, "^edgesync: " + line)

    def replica(self, name):
        d = self.path(name)
        key = self.out("init", d).rstrip("\n")
        self.assertRegex(key, HEX64)
        return d, key

    def pair(self):
        """Two replicas that trust each other."""
        a, ka = self.replica("a")
        b, kb = self.replica("b")
        self.out("trust", a, kb)
        self.out("trust", b, ka)
        return a, b

    def digest(self, d, doc):
        text = self.out("digest", d, doc)
        self.assertRegex(text, r"^[0-9a-f]{64}\n$")
        return text

    # --------------------------------------------------------- clock, copies

    def test_a_put_during_a_wall_clock_glitch_does_not_stamp_later_writes_ahead(self):
        if shutil.which("faketime") is None:
            self.skipTest("faketime is not installed (tools/install-deps.sh installs it)")
        if kernel_clock_synchronised():
            self.skipTest("the kernel reports its clock synchronised, so a jump is believed")
        a, _ = self.replica("a")
        self.out("put", a, "d", "/before", "1")
        env = dict(os.environ, FAKETIME_DONT_FAKE_MONOTONIC="1")
        p = subprocess.run(["faketime", "-f", "+365d", BINARY, "put", a, "d", "/glitch", "2"],
                           capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, "^edgesync: put: warning: the wall clock is further ahead")
        self.out("put", a, "d", "/after", "3")
        self.out("put", a, "e", "/after", "4")
        now_ms = time.time() * 1000
        last = [l for l in self.out("status", a).splitlines() if l.startswith("last time")]
        self.assertEqual(len(last), 1)
        last_ms = int(last[0].split()[2])
        self.assertLess(abs(last_ms - now_ms), 10 * 60 * 1000,
                        f"the last write is stamped {(last_ms - now_ms) / 86400000:.1f} days off")
        self.assertEqual(self.out("get", a, "d"), '{"after":3,"before":1,"glitch":2}\n')

    def test_a_copied_replica_refuses_to_write_and_the_original_keeps_writing(self):
        a, _ = self.replica("a")
        self.out("put", a, "d", "/x", "1")
        copy = self.path("a2")
        subprocess.run(["cp", "-a", a, copy], check=True)
        self.fails("put", copy, "d", "/x", "2",
                   line=r"put: the store in .* was copied from elsewhere .*a copy must not write "
                        r"with the same key.*edgesync rekey " + re.escape(copy))
        self.assertEqual(self.out("get", copy, "d"), '{"x":1}\n')
        self.out("put", a, "d", "/x", "3")
        self.assertEqual(self.out("get", a, "d"), '{"x":3}\n')
        # mv keeps the data file's inode: the moved replica keeps writing.
        moved = self.path("moved")
        os.rename(a, moved)
        self.out("put", moved, "d", "/x", "4")
        self.assertEqual(self.out("get", moved, "d"), '{"x":4}\n')

    def test_rekey_lets_a_copied_replica_write_and_keeps_its_data(self):
        a, b = self.pair()
        self.out("put", a, "d", "/x", "1")
        copy = self.path("a2")
        subprocess.run(["cp", "-a", a, copy], check=True)
        old = self.out("id", copy).rstrip("\n")
        self.fails("put", copy, "d", "/y", "2", line=r"put: .*copied from elsewhere.*"
                   r"edgesync rekey " + re.escape(copy))
        new = self.out("rekey", copy).rstrip("\n")
        self.assertRegex(new, HEX64)
        self.assertNotEqual(new, old)
        self.assertEqual(self.out("id", copy), new + "\n")
        self.assertNotIn("copied", self.out("status", copy))
        self.assertEqual(self.out("get", copy, "d"), '{"x":1}\n')
        self.out("put", copy, "d", "/y", "2")
        self.out("put", a, "d", "/z", "3")
        # The old key stays trusted on the copy; peers learn the new one.
        self.out("trust", a, new)
        self.out("trust", b, new)
        self.sync_ok(copy, b)
        self.sync_ok(a, b)
        self.sync_ok(copy, b)
        for d in (a, copy):
            self.assertEqual(self.digest(d, "d"), self.digest(b, "d"))
        self.assertEqual(self.out("get", b, "d"), '{"x":1,"y":2,"z":3}\n')
        self.fails("rekey", self.path("nothing"), line=r"rekey: no replica in ")
        self.usage_error("rekey", line="rekey: DIR is required")

    # -------------------------------------------------------------- replica

    def test_init_and_id(self):
        a, key = self.replica("a")
        self.assertEqual(self.out("id", a), key + "\n")
        self.assertEqual(self.out("init", a), key + "\n")  # idempotent
        _, other = self.replica("b")
        self.assertNotEqual(key, other)

    def test_id_does_not_create_a_replica(self):
        missing = self.path("missing")
        self.fails("id", missing, line=r'id: no replica in ".*missing"')
        self.assertFalse(os.path.exists(os.path.join(missing, "identity.key")))
        self.fails("get", missing, "d", line="get: no replica in")

    def test_trust_rejects_a_malformed_key(self):
        a, _ = self.replica("a")
        self.fails("trust", a, "abc", line="trust: key must be 64 hex digits")

    # -------------------------------------------------------------- values

    def test_every_value_type(self):
        a, _ = self.replica("a")
        cases = [
            ("/str", '"text"', '"text"'),
            ("/int", "12", "12"),
            ("/neg", "-7", "-7"),
            ("/dbl", "1.5", "1.5"),
            ("/true", "true", "true"),
            ("/null", "null", "null"),
            ("/bytes", '{"$bytes":"AAEC"}', '{"$bytes":"AAEC"}'),
            ("/set", "[3,1,2]", "[1,2,3]"),
            ("/map/nested/deep", '{"z":1,"a":"x"}', '{"a":"x","z":1}'),
        ]
        for path, value, printed in cases:
            self.assertEqual(self.out("put", a, "doc", path, value), "")
            self.assertEqual(self.out("get", a, "doc", path), printed + "\n", path)
        self.assertEqual(self.out("get", a, "doc", "/map"), '{"nested":{"deep":{"a":"x","z":1}}}\n')
        self.assertEqual(self.out("get", a, "doc", "/map/nested/deep/z"), "1\n")
        self.assertEqual(
            self.out("get", a, "doc"),
            '{"bytes":{"$bytes":"AAEC"},"dbl":1.5,"int":12,"map":{"nested":{"deep":{"a":"x","z":1}}},'
            '"neg":-7,"null":null,"set":[1,2,3],"str":"text","true":true}\n')
        self.assertEqual(self.out("get", a, "empty"), "{}\n")

    def test_counter(self):
        a, _ = self.replica("a")
        self.out("incr", a, "d", "/n", "5")
        self.out("incr", a, "d", "/n", "-2")
        self.assertEqual(self.out("get", a, "d", "/n"), "3\n")
        self.out("incr", a, "d", "/n", "010")  # decimal, not octal
        self.assertEqual(self.out("get", a, "d", "/n"), "13\n")
        self.out("incr", a, "d", "/m/deep", "-9223372036854775808")
        self.assertEqual(self.out("get", a, "d"), '{"m":{"deep":-9223372036854775808},"n":13}\n')

    def test_set(self):
        a, _ = self.replica("a")
        for v in ['"b"', "10", '"a"', "2", "true", "null", "1.5", "-3"]:
            self.out("add", a, "d", "/s", v)
        self.out("add", a, "d", "/s", '"a"')  # already there
        # Sorted by kind (null, bool, integer, double, string), then value.
        self.assertEqual(self.out("get", a, "d", "/s"), '[null,true,-3,2,10,1.5,"a","b"]\n')
        self.out("rm", a, "d", "/s", "10")
        self.out("rm", a, "d", "/s", "null")
        self.assertEqual(self.out("get", a, "d", "/s"), '[true,-3,2,1.5,"a","b"]\n')
        self.fails("add", a, "d", "/s", '{"x":1}', line="add: expected a JSON scalar")

    def test_numeric_set_is_sorted(self):
        a, _ = self.replica("a")
        for v in ["30", "4", "100", "-1"]:
            self.out("add", a, "d", "/s", v)
        self.assertEqual(self.out("get", a, "d", "/s"), "[-1,4,30,100]\n")
        self.out("add", a, "d", "/t", '"pear"')
        self.out("add", a, "d", "/t", '"apple"')
        self.assertEqual(self.out("get", a, "d", "/t"), '["apple","pear"]\n')

    def test_delete(self):
        a, _ = self.replica("a")
        self.out("put", a, "d", "", '{"x":{"y":1},"z":2}')
        self.out("del", a, "d", "/x/y")
        self.assertEqual(self.out("get", a, "d"), '{"x":{},"z":2}\n')
        self.out("del", a, "d", "/x")
        self.assertEqual(self.out("get", a, "d"), '{"z":2}\n')
        self.fails("get", a, "d", "/x", line='get: no value at "/x"$')

    def test_docs(self):
        a, _ = self.replica("a")
        self.assertEqual(self.out("docs", a), "")
        for doc in ["pump-7", "alpha", "pump-10"]:
            self.out("put", a, doc, "/v", "1")
        self.assertEqual(self.out("docs", a), "alpha\npump-10\npump-7\n")

    def test_compact_keeps_the_state(self):
        a, _ = self.replica("a")
        for i in range(5):
            self.out("put", a, "d", "/v", str(i))
        before = self.digest(a, "d")
        self.assertEqual(self.out("compact", a, "d"), "")
        self.assertEqual(self.digest(a, "d"), before)
        self.assertEqual(self.out("get", a, "d"), '{"v":4}\n')

    def test_error_lines(self):
        a, _ = self.replica("a")
        self.fails("put", a, "d", "x", "1", line="put: path \"x\" must be empty or start with '/'")
        self.fails("put", a, "d", "/x", "{bad", line="put: invalid JSON")
        self.fails("put", a, "d", "", "1", line="put: the document root is a map")
        self.fails("get", a, "d", "/nothing", line='get: no value at "/nothing"$')
        self.fails("incr", a, "d", "", "1", line="incr: the document root is a map")
        self.fails("put", a, "", "/x", "1", line="put: document id is empty")

    # -------------------------------------------------------------- conflicts

    def test_get_conflicts(self):
        a, b = self.pair()
        self.out("put", a, "d", "/k", '"from a"')
        self.out("put", b, "d", "/k", '"from b"')
        self.run_cli("sync", a, b)
        for d in (a, b):
            got = json.loads(self.out("get", d, "d", "/k", "--conflicts"))
            winner = got["value"]
            loser = "from b" if winner == "from a" else "from a"
            self.assertEqual(got["conflicts"], [{"path": "/k", "value": winner, "conflicts": [loser]}])
        self.assertEqual(self.out("get", a, "d", "--conflicts"), self.out("get", b, "d", "--conflicts"))
        self.assertEqual(self.out("get", a, "none", "--conflicts"), '{"value":{},"conflicts":[]}\n')

    # -------------------------------------------------------------- sync

    def sync_ok(self, *args):
        stdout = self.out("sync", *args)
        lines = stdout.splitlines()
        self.assertEqual(len(lines), 3, stdout)
        self.assertRegex(lines[0], r"^A -> B: \d+ messages, \d+ bytes, \d+ flights$")
        self.assertRegex(lines[1], r"^B -> A: \d+ messages, \d+ bytes, \d+ flights$")
        self.assertEqual(lines[2], "in sync")
        return lines

    def test_sync(self):
        a, b = self.pair()
        self.out("put", a, "d", "/x", '{"from":"a"}')
        self.out("incr", b, "d", "/n", "-2")
        self.out("add", b, "e", "/s", "1")
        lines = self.sync_ok(a, b)
        self.assertRegex(lines[0], r", 3 flights$")
        for doc in ("d", "e"):
            self.assertEqual(self.digest(a, doc), self.digest(b, doc))
            self.assertEqual(self.out("get", a, doc), self.out("get", b, doc))
        self.assertEqual(self.out("get", a, "d"), '{"n":-2,"x":{"from":"a"}}\n')
        # Already in sync: one flight each way, still exit 0.
        lines = self.sync_ok(a, b)
        self.assertRegex(lines[0], r", 1 flights$")

    def test_sync_small_messages(self):
        a, b = self.pair()
        for i in range(20):
            self.out("put", a, "d", f"/k{i}", json.dumps("x" * 100))
        lines = self.sync_ok(a, b, "--max-message-bytes", "512")
        messages, sent = map(int, re.match(r"A -> B: (\d+) messages, (\d+) bytes", lines[0]).groups())
        self.assertLessEqual(sent, messages * 512)
        self.assertGreater(messages, 4)
        self.assertEqual(self.digest(a, "d"), self.digest(b, "d"))

    def test_sync_prefix(self):
        a, b = self.pair()
        self.out("put", a, "pump-1", "/v", "1")
        self.out("put", a, "valve-1", "/v", "2")
        self.sync_ok(a, b, "--prefix", "pump-")
        self.assertEqual(self.out("docs", b), "pump-1\n")
        self.assertEqual(self.out("get", b, "pump-1"), '{"v":1}\n')

    def test_sync_untrusted_fails(self):
        a, _ = self.replica("a")
        b, kb = self.replica("b")
        self.out("trust", a, kb)  # b does not trust a
        self.out("put", a, "d", "/v", "1")
        stdout, stderr = self.run_cli("sync", a, b, rc=1)
        self.assertRegex(stdout, r"^A -> B: .*\nB -> A: .*\n$")
        self.assertRegex(stderr, r"^edgesync: sync: not in sync: state hashes differ for d \(.*\)\n$")

    # -------------------------------------------------------------- bundles

    def test_export_import_both_ways(self):
        a, b = self.pair()
        self.out("put", a, "d", "/a", "[1,2]")
        self.out("incr", b, "d", "/n", "4")
        self.out("put", b, "other", "/x", "true")
        fa, fb = self.path("a.bundle"), self.path("b.bundle")
        self.assertEqual(self.out("export", a, fa), "exported 1 batches of 1 documents, "
                         f"{os.path.getsize(fa)} bytes\n")
        self.assertRegex(self.out("export", b, fb), r"^exported 2 batches of 2 documents, \d+ bytes\n$")
        self.assertEqual(self.out("import", b, fa), "applied 1, duplicate 0, held 0, rejected 0\n")
        self.assertEqual(self.out("import", a, fb), "applied 2, duplicate 0, held 0, rejected 0\n")
        for doc in ("d", "other"):
            self.assertEqual(self.digest(a, doc), self.digest(b, doc))
            self.assertEqual(self.out("get", a, doc), self.out("get", b, doc))
        self.assertEqual(self.out("get", a, "d"), '{"a":[1,2],"n":4}\n')
        # Importing again, or a replica's own bundle, only finds duplicates.
        self.assertEqual(self.out("import", b, fa), "applied 0, duplicate 1, held 0, rejected 0\n")
        self.assertEqual(self.out("import", a, fa), "applied 0, duplicate 1, held 0, rejected 0\n")

    def test_export_prefix(self):
        a, b = self.pair()
        self.out("put", a, "pump-1", "/v", "1")
        self.out("put", a, "valve-1", "/v", "2")
        f = self.path("p.bundle")
        self.out("export", a, f, "--prefix", "pump-")
        self.out("import", b, f)
        self.assertEqual(self.out("docs", b), "pump-1\n")

    def test_damaged_bundle(self):
        a, b = self.pair()
        self.out("put", a, "d", "/v", '"payload"')
        self.out("put", b, "d", "/w", "1")
        f = self.path("a.bundle")
        self.out("export", a, f)
        data = bytearray(open(f, "rb").read())
        before = self.digest(b, "d")
        for i, damaged in enumerate([
                data[:len(data) // 2],                                     # truncated
                data[:40] + bytes([data[40] ^ 0x01]) + data[41:],          # one bit flipped
                b"not a bundle at all, just some text......",
        ]):
            g = self.path(f"damaged{i}.bundle")
            with open(g, "wb") as out:
                out.write(damaged)
            self.fails("import", b, g, line=r'import: bundle ".*damaged%d.bundle" is (corrupt|truncated)' % i)
            self.assertEqual(self.digest(b, "d"), before)
        self.fails("import", b, self.path("missing.bundle"), line="import: open .*missing.bundle")

    def test_import_untrusted_author(self):
        a, ka = self.replica("a")
        b, _ = self.replica("b")  # does not trust a
        self.out("put", a, "d", "/v", "1")
        self.out("put", a, "e", "/w", "2")
        f = self.path("a.bundle")
        self.assertRegex(self.out("export", a, f), "^exported 2 batches")
        stdout, stderr = self.run_cli("import", b, f, rc=1)
        self.assertEqual(stdout, "applied 0, duplicate 0, held 0, rejected 2\n"
                                 "rejected untrusted_author: 2\n")
        lines = stderr.splitlines()
        self.assertEqual(len(lines), 2, stderr)
        for line in lines:
            self.assertRegex(line, r"^edgesync: import: batch \d: untrusted_author: .*not trusted")
        self.assertEqual(self.out("docs", b), "")
        # Trusted now: the same bundle applies.
        self.out("trust", b, ka)
        self.assertEqual(self.out("import", b, f), "applied 2, duplicate 0, held 0, rejected 0\n")
        self.assertEqual(self.digest(a, "d"), self.digest(b, "d"))

    # ------------------------------------------ hostile input (security issue 9)

    @staticmethod
    def bundle_bytes(batches):
        """A valid ESBUNDL1 file holding `batches` (docs/batch-format.md)."""
        body = b"ESBUNDL1" + len(batches).to_bytes(8, "big")
        body += b"".join(len(x).to_bytes(4, "big") + x for x in batches)
        return body + hashlib.blake2b(body, digest_size=32).digest()

    @staticmethod
    def bundle_entries(data):
        count = int.from_bytes(data[8:16], "big")
        at, out = 16, []
        for _ in range(count):
            n = int.from_bytes(data[at:at + 4], "big")
            out.append(data[at + 4:at + 4 + n])
            at += 4 + n
        return out

    @staticmethod
    def padded(batch):
        """The same signed batch with one unused word in its segment: a valid
        Cap'n Proto message with the same body and signature."""
        assert int.from_bytes(batch[0:4], "little") == 0, "one segment"
        words = int.from_bytes(batch[4:8], "little")
        return batch[:4] + (words + 1).to_bytes(4, "little") + batch[8:] + bytes(8)

    def write(self, name, data):
        f = self.path(name)
        with open(f, "wb") as out:
            out.write(data)
        return f

    def attackers_file(self):
        v = self.write("victim", b"attacker's file\n")
        os.chmod(v, 0o644)
        return v

    def read(self, f):
        with open(f, "rb") as inp:
            return inp.read()

    def test_init_refuses_a_link_at_identity_key(self):
        d = self.path("r")
        os.mkdir(d, 0o700)
        key = os.path.join(d, "identity.key")
        victim = self.attackers_file()
        os.symlink(victim, key)
        line = r'init: identity file ".*/r/identity.key" is a symbolic link, which edgesync does not follow'
        self.fails("init", d, line=line)
        self.assertEqual(self.read(victim), b"attacker's file\n")
        self.assertEqual(os.stat(victim).st_mode & 0o777, 0o644)
        # A dangling link: nothing is created through it, no store either.
        os.unlink(key)
        nowhere = self.path("nowhere")
        os.symlink(nowhere, key)
        self.fails("init", d, line=line)
        self.assertFalse(os.path.lexists(nowhere))
        self.assertEqual(os.listdir(d), ["identity.key"])

    def test_init_ignores_links_planted_at_temporary_names(self):
        """The old writer used identity.key.tmp.<pid> with O_CREAT|O_TRUNC and
        followed a link there: plant one for each pid the command may get."""
        try:
            with open("/proc/sys/kernel/ns_last_pid") as f:
                last = int(f.read())
        except OSError:
            self.skipTest("no /proc/sys/kernel/ns_last_pid to guess the next pid")
        d = self.path("r")
        os.mkdir(d, 0o700)
        victim = self.attackers_file()
        for pid in range(last + 1, last + 3000):
            os.symlink(victim, os.path.join(d, f"identity.key.tmp.{pid}"))
        self.assertRegex(self.out("init", d).rstrip("\n"), HEX64)
        self.assertEqual(self.read(victim), b"attacker's file\n")
        self.assertEqual(os.stat(victim).st_mode & 0o777, 0o644)
        key = os.path.join(d, "identity.key")
        self.assertFalse(os.path.islink(key))
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        self.assertEqual(len([n for n in os.listdir(d) if n.startswith("identity.key.tmp.")]), 2999)

    def test_init_refuses_a_directory_others_may_write(self):
        d = self.path("r")
        os.mkdir(d)
        for mode in (0o777, 0o1777, 0o770):
            os.chmod(d, mode)
            self.fails("init", d, line=r'init: directory ".*/r" has mode %04o: group or others may '
                                       r"create and replace files in it; run chmod go-w on it" % mode)
            self.assertEqual(os.listdir(d), [])
        os.chmod(d, 0o755)
        key = self.out("init", d)
        os.chmod(d, 0o777)  # opened up later
        self.fails("id", d, line=r'id: directory ".*/r" has mode 0777')
        os.chmod(d, 0o700)
        self.assertEqual(self.out("id", d), key)
        if os.geteuid() == 0:
            os.chown(d, 54321, 54321)
            self.fails("id", d, line=r'id: directory ".*/r" is owned by uid 54321, not by the user '
                                     r"opening it \(uid 0\)")
            os.chown(d, 0, 0)

    def test_identity_file_must_be_a_private_regular_file_of_ours(self):
        a, ka = self.replica("a")
        key = os.path.join(a, "identity.key")
        saved = self.read(key)
        for mode in (0o640, 0o604, 0o660):
            os.chmod(key, mode)
            self.fails("id", a, line=r'id: identity file ".*/a/identity.key" has mode %04o: group or '
                                     r"others may access it; run chmod 600 on it" % mode)
        os.chmod(key, 0o600)
        if os.geteuid() == 0:
            os.chown(key, 54321, 54321)
            self.fails("id", a, line=r'id: identity file ".*/a/identity.key" is owned by uid 54321, '
                                     r"not by the user opening it \(uid 0\)")
            os.chown(key, 0, 0)
        os.unlink(key)
        os.mkdir(key, 0o700)
        self.fails("id", a, line=r'id: identity file ".*/a/identity.key" is a directory, not a '
                                 r"regular file; move it away")
        os.rmdir(key)
        copy = self.write("copy.key", saved)
        os.chmod(copy, 0o600)
        os.symlink(copy, key)
        self.fails("id", a, line=r'id: identity file ".*/a/identity.key" is a symbolic link')
        os.unlink(key)
        os.rename(copy, key)
        self.assertEqual(self.out("id", a), ka + "\n")

    def test_import_refuses_a_padded_copy_of_a_stored_batch(self):
        a, b = self.pair()
        self.out("put", a, "d", "/v", '"honest"')
        f = self.path("a.bundle")
        self.out("export", a, f)
        [honest] = self.bundle_entries(self.read(f))
        self.assertEqual(self.out("import", b, f), "applied 1, duplicate 0, held 0, rejected 0\n")
        g = self.write("padded.bundle", self.bundle_bytes([self.padded(honest)]))
        stdout, stderr = self.run_cli("import", b, g, rc=1)
        self.assertEqual(stdout, "applied 0, duplicate 0, held 0, rejected 1\n"
                                 "rejected not_canonical: 1\n")
        self.assertEqual(stderr, "edgesync: import: batch 1: not_canonical: "
                                 "batch envelope is not in canonical form\n")
        # The stored batch is still the honest one, byte for byte.
        h = self.path("b.bundle")
        self.out("export", b, h)
        self.assertIn(honest, self.bundle_entries(self.read(h)))
        self.assertEqual(self.digest(a, "d"), self.digest(b, "d"))

    def test_import_of_many_bad_entries_prints_a_bounded_summary(self):
        b, _ = self.replica("b")
        n = 200000
        f = self.write("junk.bundle", self.bundle_bytes([b""] * n))
        stdout, stderr = self.run_cli("import", b, f, rc=1)
        self.assertEqual(stdout, f"applied 0, duplicate 0, held 0, rejected {n}\n"
                                 f"rejected malformed: {n}\n")
        lines = stderr.splitlines()
        self.assertEqual(len(lines), 9, stderr[:2000])
        for i, line in enumerate(lines[:8]):
            self.assertRegex(line, r"^edgesync: import: batch %d: malformed: " % (i + 1))
        self.assertEqual(lines[8], f"edgesync: import: {n - 8} more rejected batches not shown")

    def test_import_summary_shows_every_reason(self):
        a, ka = self.replica("a")
        b, _ = self.replica("b")  # does not trust a
        self.out("put", a, "d", "/v", "1")
        f = self.path("a.bundle")
        self.out("export", a, f)
        [batch] = self.bundle_entries(self.read(f))
        bad_signature = batch[:-1] + bytes([batch[-1] ^ 1])
        g = self.write("mixed.bundle", self.bundle_bytes(
            [b""] * 20 + [batch, bad_signature, self.padded(batch)]))
        stdout, stderr = self.run_cli("import", b, g, rc=1)
        self.assertEqual(stdout, "applied 0, duplicate 0, held 0, rejected 23\n"
                                 "rejected bad_signature: 1\n"
                                 "rejected malformed: 20\n"
                                 "rejected not_canonical: 1\n"
                                 "rejected untrusted_author: 1\n")
        lines = stderr.splitlines()
        self.assertEqual(len(lines), 9, stderr)
        # The first of every reason is shown; the rest of the room goes to
        # the earliest rejections.
        for i in range(5):
            self.assertRegex(lines[i], r"^edgesync: import: batch %d: malformed: " % (i + 1))
        self.assertRegex(lines[5], r"^edgesync: import: batch 21: untrusted_author: .*not trusted")
        self.assertEqual(lines[6], "edgesync: import: batch 22: bad_signature: "
                                   f"batch signature by {ka} does not verify")
        self.assertEqual(lines[7], "edgesync: import: batch 23: not_canonical: "
                                   "batch envelope is not in canonical form")
        self.assertEqual(lines[8], "edgesync: import: 15 more rejected batches not shown")

    def test_vv_and_export_since(self):
        a, b = self.pair()
        self.out("put", a, "d", "/v", "1")
        self.out("put", a, "d", "/w", "2")
        self.sync_ok(a, b)
        self.out("put", a, "d", "/x", "3")
        self.out("put", a, "e", "/y", "4")
        vv_text = self.out("vv", b)
        self.assertEqual(vv_text.count("\n"), 1)
        ka = self.out("id", a).strip()
        vv = json.loads(vv_text)
        self.assertEqual(vv, {"d": {ka: [[1, 2]]}})
        self.assertEqual(json.loads(self.out("vv", a, "--prefix", "e")), {"e": {ka: [[1, 1]]}})
        vv_file = self.path("b.vv")
        with open(vv_file, "w") as out:
            out.write(vv_text)
        f = self.path("since.bundle")
        self.assertRegex(self.out("export", a, f, "--since", vv_file),
                         r"^exported 2 batches of 2 documents, \d+ bytes\n$")
        self.assertEqual(self.out("import", b, f), "applied 2, duplicate 0, held 0, rejected 0\n")
        for doc in ("d", "e"):
            self.assertEqual(self.digest(a, doc), self.digest(b, doc))
        self.assertEqual(self.out("vv", a), self.out("vv", b))

    def test_export_since_bad_file(self):
        a, _ = self.replica("a")
        f = self.path("x.bundle")
        bad = self.path("bad.vv")
        for text, line in [
                ("{oops", r'export: ".*bad.vv": version vectors: parse error at line 1'),
                ("[]", "export: .*expected a JSON object keyed by document"),
                ('{"d":{"XY":[[1,2]]}}', 'export: .*author "XY" is not 64 lowercase hex digits'),
                ('{"d":{"%s":[[3,2]]}}' % ("a" * 64), r"export: .*range \[3,2\] needs 1 <= first <= last"),
                ('{"d":{"%s":[[1]]}}' % ("a" * 64), r"export: .*a range must be \[first,last\]"),
        ]:
            with open(bad, "w") as out:
                out.write(text)
            self.fails("export", a, f, "--since", bad, line=line)
        self.fails("export", a, f, "--since", self.path("nope.vv"), line='export: cannot open ".*nope.vv"')
        self.assertFalse(os.path.exists(f))

    # -------------------------------------------------------------- usage

    def test_usage_errors(self):
        a, _ = self.replica("a")
        self.usage_error(line=r"A subcommand is required")
        self.usage_error("frob", line='unknown command "frob"')
        self.usage_error("--bogus")
        self.usage_error("init", line="init: DIR is required")
        self.usage_error("put", a, "d", "/x", line="put: JSON is required")
        self.usage_error("put", a, "d", "/x", "1", "extra", line="put: .*extra")
        self.usage_error("incr", a, "d", "/n", "abc", line="incr: .*abc")
        self.usage_error("incr", a, "d", "/n", "1.5", line="incr: ")
        self.usage_error("incr", a, "d", "/n", "99999999999999999999",
                         line="incr: .*expected a decimal 64-bit integer")
        self.usage_error("incr", a, "d", "/n", "0x10", line="incr: ")
        self.usage_error("get", a, "d", "--nope", line="get: ")
        self.usage_error("sync", a, line="sync: DIR_B is required")
        self.usage_error("sync", a, a, "--max-message-bytes", "100", line="sync: .*100")
        self.usage_error("sync", a, a, "--max-message-bytes", "x", line="sync: ")
        self.usage_error("export", a, line="export: FILE is required")
        self.usage_error("vv", a, "--prefix", line="vv: ")
        self.assertEqual(self.out("get", a, "d"), "{}\n")  # nothing ran

    def test_help(self):
        stdout = self.out("--help")
        commands = ["init", "id", "trust", "rekey", "vv", "put", "del", "incr", "add", "rm", "get", "docs",
                    "digest", "compact", "export", "import", "sync"]
        for c in commands:
            self.assertRegex(stdout, r"\n  %s " % c)
            text = self.out(c, "--help")
            self.assertIn(f"Usage: edgesync {c} ", text)
            self.assertIn("DIR", text)
        self.assertIn("Idempotent", self.out("init", "--help"))


def main():
    global BINARY
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    BINARY = os.path.abspath(sys.argv[1])
    unittest.main(argv=[sys.argv[0], "-v"])


if __name__ == "__main__":
    main()
