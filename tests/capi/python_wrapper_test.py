#!/usr/bin/env python3
"""examples/python/edgesync.py against the built library: errors arrive as
edgesync.Error with the right code, txns, subscriptions (and what a callback
may not do), bundles, a 512-byte session, nodes, limits and close-order
safety, all through ctypes.

usage: python_wrapper_test.py LIBEDGESYNC.so
"""

import os
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "examples", "python"))
import edgesync  # noqa: E402


def expect_error(code, fn, *args):
    try:
        fn(*args)
    except edgesync.Error as e:
        assert e.code == code, "%s: got %s (%s), want %s" % (fn, e.name, e.detail, code)
        return e
    raise AssertionError("%s%r did not fail" % (fn.__name__, args))


def main():
    lib = edgesync.load(sys.argv[1] if len(sys.argv) > 1 else None)
    assert lib.edgesync_version_number() == edgesync.VERSION_NUMBER
    logs = []
    edgesync.set_log(lambda level, msg: logs.append((level, msg)), 0)
    with tempfile.TemporaryDirectory(prefix="edgesync-py-") as tmp:
        a = edgesync.Replica(os.path.join(tmp, "a"))
        b = edgesync.Replica(os.path.join(tmp, "b"))
        assert any(level == 0 and "replica opened" in m for level, m in logs), logs
        assert len(a.public_key) == 64 and a.public_key != b.public_key

        expect_error(edgesync.INVALID_ARGUMENT, a.put, "d", "no-slash", 1)
        expect_error(edgesync.INVALID_ARGUMENT, a.put, "d", "", 1)  # root must be a map
        expect_error(edgesync.INVALID_ARGUMENT, a.trust, "not-a-key")
        e = expect_error(edgesync.NOT_FOUND, a.get, "d", "/missing")
        assert "edgesync_doc_get" in e.detail, e.detail
        expect_error(edgesync.WRONG_STATE, edgesync.Replica, os.path.join(tmp, "a"))
        expect_error(edgesync.INVALID_ARGUMENT, lambda: a.node(fanout="3"))
        expect_error(edgesync.INVALID_ARGUMENT, a.session, "", 100)
        expect_error(edgesync.INVALID_ARGUMENT, a.txn, "")
        expect_error(edgesync.INVALID_ARGUMENT, a.put, "d" * (edgesync.DOC_ID_BYTES_MAX + 1), "/a", 1)
        e = expect_error(edgesync.INVALID_ARGUMENT, lambda: a.node(lisen="127.0.0.1:0"))
        assert "lisen" in e.detail, e.detail
        e = expect_error(edgesync.INVALID_ARGUMENT, edgesync.Replica, os.path.join(tmp, "x" * 300))
        assert "255" in e.detail, e.detail

        with a.txn("d") as t:
            t.put("/x", {"y": [3, 1]})
            t.counter_add("/n", 7)
            expect_error(edgesync.INVALID_ARGUMENT, t.put, "bad", 1)
        assert a.get("d") == {"n": 7, "x": {"y": [1, 3]}}
        t = a.txn("d")
        t.put("/x", 0)
        t.abort()
        assert a.get("d", "/x") == {"y": [1, 3]}

        changes = []
        sub = b.subscribe(lambda doc, ch, remote: changes.append((doc, ch, remote)))
        bundle = os.path.join(tmp, "a.bundle")
        a.bundle_export(bundle)
        e = expect_error(edgesync.UNAUTHENTICATED, b.bundle_import, bundle)
        assert e.report["rejected"] == 1 and e.report["applied"] == 0, e.report
        b.trust(a.public_key)
        a.trust(b.public_key)
        report = b.bundle_import(bundle)
        assert report["applied"] == 1 and report["rejected"] == 0, report
        assert changes and changes[-1][0] == "d" and changes[-1][2] is True, changes
        ch = changes[-1][1]
        assert ch["remote"] is True and ch["author"] == a.public_key, ch
        assert ch["paths"] == sorted(ch["paths"]) and "/n" in ch["paths"], ch
        b.unsubscribe(sub)
        expect_error(edgesync.NOT_FOUND, b.unsubscribe, sub)

        # A callback may read its replica but not write it.
        seen = []

        def writer(doc, change, remote):
            seen.append(b.get("d", "/n"))
            try:
                b.put("elsewhere", "/x", 1)
                seen.append("wrote")
            except edgesync.Error as e:
                seen.append(e.name)
        sub = b.subscribe(writer, "d")
        b.counter_add("d", "/n", 1)
        b.unsubscribe(sub)
        assert seen == [8, "WRONG_STATE"], seen

        b.put("e", "/text", "x" * 5000)
        b.set_add("e", "/s", 1)
        assert edgesync.sync(a, b, "", 512)
        assert a.get_json("e") == b.get_json("e")
        assert a.digest("d") == b.digest("d")
        assert a.conflicts("e") == []
        a.compact("d")

        # Children keep their replica alive: close it first.
        s = a.session()
        t = a.txn("late")
        t.put("/ok", True)
        stale = a._h.value
        a.close()
        expect_error(edgesync.MISUSE, a.put, "late", "/x", 1)  # closed: no crash
        rc = lib.edgesync_doc_put(stale, b"late", b"/x", b"1")  # a stale pointer too
        assert rc == edgesync.MISUSE, rc
        assert s.next() is not None
        t.commit()
        s.close()
        a = edgesync.Replica(os.path.join(tmp, "a"))
        assert a.get("late") == {"ok": True}

        node = a.node(listen="127.0.0.1:0")
        stats = node.stats()
        assert stats["port"] > 0 and stats["peers"] == [], stats
        expect_error(edgesync.INVALID_ARGUMENT, node.add_peer, "nonsense")
        node.stop()
        assert any(level == 1 and "node started" in m for level, m in logs), logs
        assert any(level == 1 and "node stopped" in m for level, m in logs), logs
        a.close()
        b.close()
    edgesync.set_log(None)
    print("python wrapper: ok")


if __name__ == "__main__":
    main()
