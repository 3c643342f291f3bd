#!/usr/bin/env python3
"""The binary README's first command builds (the dev profile) against a
release build, creating the same Swarm on the local cloud (run by hand, not
in CI):

    scripts/bench/dev-vs-release.py DEV_BINARY RELEASE_BINARY [--workers 8] [--runs 3]

Each run creates a 1+N Swarm with `provision swarm` and destroys it, timed
from the command's start to its exit (every node Ready in `docker node ls`),
the two binaries taking turns at going first, each run starting once the
CPUs have been 85% idle for two seconds (create-vs-ansible.py's `settle`).
Beside each time it gives the critical path of the run's own nodes (each
node's chain from when its sshd and engine answered, then `swarm init` and
the joins as long as they took), so the difference left is provision's own
work. It prints every run, then each binary's median and the ratio of the
medians.
"""

import argparse
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("create_vs_ansible", HERE / "create-vs-ansible.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dev")
    parser.add_argument("release")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binaries = {"dev": args.dev, "release": args.release}
    for exe in binaries.values():
        if not Path(exe).is_file():
            sys.exit(f"{exe}: no such binary (build it first: scripts/build.sh, cargo build --release)")
    times = {name: [] for name in binaries}
    with tempfile.TemporaryDirectory() as work:
        state = str(Path(work) / "state.db")
        # Untimed: warm caches (the node image, the engine) for both.
        bench.settle()
        bench.run_provision(args.release, state, 1)
        print(f"{'run':>3} {'binary':<8} {'provision':>10} {'own crit':>9} {'over crit':>10}")
        for run in range(args.runs):
            order = ["dev", "release"] if run % 2 == 0 else ["release", "dev"]
            for name in order:
                bench.settle()
                took, _, (own, _) = bench.run_provision(binaries[name], state, args.workers)
                times[name].append(took)
                print(f"{run + 1:>3} {name:<8} {took:>9.1f}s {own:>8.1f}s {took - own:>9.1f}s",
                      flush=True)
    dev, release = (statistics.median(times[n]) for n in ("dev", "release"))
    print(f"1+{args.workers}: median dev {dev:.1f}s, release {release:.1f}s, "
          f"dev/release {dev / release:.2f}")


if __name__ == "__main__":
    main()
