#!/usr/bin/env python3
"""Two replicas in temporary directories, writes on each, a sync through a pair
of sessions driven from Python, and both print the same JSON.

    python3 examples/python/demo.py build/lib/capi/libedgesync.so
    EDGESYNC_LIB=build/lib/capi/libedgesync.so python3 examples/python/demo.py

It prints one line per replica, "<name>: <json>", where <json> holds every
document of that replica as the library prints it; tests/capi/python_demo_test.py
checks that the two are equal.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgesync  # noqa: E402


def state_json(replica):
    """Every document of the replica as one JSON object, {"<id>":<document>},
    built from the library's own output (compact, keys sorted)."""
    return "{%s}" % ",".join("%s:%s" % (json.dumps(doc), replica.get_json(doc))
                             for doc in replica.docs())


def carry(a_session, b_session):
    """Carries messages both ways until neither side has anything to send:
    the application's radio, serial line or queue would sit here."""
    busy = True
    while busy:
        busy = False
        for src, dst in ((a_session, b_session), (b_session, a_session)):
            message = src.next()
            if message is not None:
                dst.receive(message)
                busy = True


def main():
    edgesync.load(sys.argv[1] if len(sys.argv) > 1 else None)
    with tempfile.TemporaryDirectory(prefix="edgesync-demo-") as tmp:
        with edgesync.Replica(os.path.join(tmp, "pump")) as pump, \
                edgesync.Replica(os.path.join(tmp, "gateway")) as gateway:
            # Each accepts the other's batches.
            pump.trust(gateway.public_key)
            gateway.trust(pump.public_key)

            # Writes on each side, concurrent as far as they know.
            pump.put("pump-7", "/rpm", 1450)
            pump.counter_add("pump-7", "/starts", 2)
            pump.set_add("pump-7", "/tags", "hot")
            with pump.txn("pump-7") as t:
                t.put("/site", {"name": "north", "floor": 2})
                t.counter_add("/starts", 1)
            gateway.put("pump-7", "/setpoint", 1500)
            gateway.counter_add("pump-7", "/starts", 5)
            gateway.set_add("pump-7", "/tags", "serviced")
            gateway.put("gateway", "", {"uptime_s": 3600})

            changes = []
            gateway.subscribe(lambda doc, change, remote: changes.append((doc, remote)), "pump-")

            # The sync: a session per side, messages carried by Python.
            with pump.session() as a_session, gateway.session() as b_session:
                carry(a_session, b_session)
                if not (a_session.synced and b_session.synced):
                    sys.exit("demo: the sessions did not verify equal state hashes")
            if ("pump-7", True) not in changes:
                sys.exit("demo: the gateway saw no remote change: %r" % changes)

            print("pump: %s" % state_json(pump))
            print("gateway: %s" % state_json(gateway))


if __name__ == "__main__":
    main()
