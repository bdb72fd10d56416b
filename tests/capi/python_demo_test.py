#!/usr/bin/env python3
"""Runs examples/python/demo.py as a user would and checks what it prints:
exactly two lines, "pump: <json>" and "gateway: <json>", whose JSON is equal,
parses, and holds every write of both sides merged.

usage: python_demo_test.py LIBEDGESYNC.so
"""

import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
demo = os.path.join(here, "..", "..", "examples", "python", "demo.py")


def main():
    lib = sys.argv[1]
    run = subprocess.run([sys.executable, demo, lib], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    sys.stderr.write(run.stderr)
    print(run.stdout, end="")
    assert run.returncode == 0, "demo.py exited with %d" % run.returncode
    lines = run.stdout.splitlines()
    assert len(lines) == 2, "want two lines, got %r" % lines
    names, texts = zip(*(line.split(": ", 1) for line in lines))
    assert names == ("pump", "gateway"), names
    assert texts[0] == texts[1], "the replicas print different JSON:\n%s\n%s" % texts
    state = json.loads(texts[0])
    assert state == {
        "gateway": {"uptime_s": 3600},
        "pump-7": {"rpm": 1450, "setpoint": 1500, "site": {"floor": 2, "name": "north"},
                   "starts": 8, "tags": ["hot", "serviced"]},
    }, state
    print("python demo: both replicas printed the same JSON")


if __name__ == "__main__":
    main()
