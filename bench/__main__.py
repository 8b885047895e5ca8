"""Run every benchmark, one after the other, each as `python -m bench.NAME`.

    .venv/bin/python -m bench --quick            all of them, short runs (what `make bench` does)
    .venv/bin/python -m bench --quick serve sync  only these
    .venv/bin/python -m bench --list             their names

Options other than the names are passed to every benchmark. Exits non-zero when any failed,
after running the rest, and names the ones that did.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT

NOT_BENCHMARKS = {"common", "__main__"}


def names() -> list[str]:
    """Every benchmark module of the package, by name."""
    found = pkgutil.iter_modules([str(Path(__file__).parent)])
    return sorted(m.name for m in found if m.name not in NOT_BENCHMARKS)


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return 0
    if "--list" in argv:
        print("\n".join(names()))
        return 0
    chosen = [a for a in argv if not a.startswith("-")]
    options = [a for a in argv if a.startswith("-")]
    unknown = set(chosen) - set(names())
    if unknown:
        print(f"no such benchmark: {', '.join(sorted(unknown))} (see --list)", file=sys.stderr)
        return 2
    failed: list[str] = []
    for name in chosen or names():
        command = [sys.executable, "-m", f"bench.{name}", *options]
        print(f"\n=== {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.run(command, cwd=ROOT).returncode
        took = time.monotonic() - started
        print(f"=== bench.{name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {took:.0f} s")
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
