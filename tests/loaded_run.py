"""Run the offline suite with CPU-bound processes beside it: the check that no test depends on
how fast the machine is at the moment (issue 9: timing tests used to fail under load).

    python tests/loaded_run.py                 # two busy processes, pytest -q -m "not real"
    python tests/loaded_run.py --busy 3 -- tests/test_gateway.py

Arguments after `--` go to pytest instead of the default selection. Exits with pytest's status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes to run beside the suite")
    parser.add_argument("pytest_args", nargs="*", help='after "--": what to give pytest')
    args = parser.parse_args()
    pytest_args = args.pytest_args or ["-m", "not real"]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
                              cwd=ROOT, env=os.environ.copy())
        print(f"loaded run: {args.busy} busy processes beside the suite, pytest exited {done.returncode} "
              f"after {time.monotonic() - started:.1f} s")
        return done.returncode
    finally:
        for process in busy:
            process.kill()
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
