#!/usr/bin/env python3
"""The test binaries in cargo's JSON messages (`cargo test --no-run
--message-format=json`) that `cargo test` itself would run: unit tests of
libraries and binaries, and integration tests; not benches or examples,
which are only built. One line each: name, package directory, executable,
tab-separated, for scripts/test-lanes.sh."""
import json
import os
import sys

RUN = {"lib", "bin", "test"}

for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    if not msg.get("profile", {}).get("test"):
        continue
    kinds = set(msg["target"]["kind"]) & RUN
    if not kinds:
        continue
    kind = kinds.pop()
    name = msg["target"]["name"]
    if kind != "test":
        name = f"{name}-{kind}"
    directory = os.path.dirname(msg["manifest_path"])
    print(f"{name}\t{directory}\t{msg['executable']}")
