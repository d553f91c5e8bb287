"""The long fuzzing run (issue 16): tests/fuzz with many more, randomly seeded examples.

    .venv/bin/python benchmarks/fuzz_long.py [EXAMPLES]   # default 5000 per property

Prints the examples run, the seconds taken and pytest's result line; the figure is in
benchmarks/README.md ("Fuzzing the readers"). CI runs tests/fuzz with 150 derandomized examples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    env = {**os.environ, "BILGE_FUZZ_EXAMPLES": str(examples), "BILGE_FUZZ_RANDOM": "1",
           "PYTHONPATH": str(ROOT / "src")}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fuzz"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    result = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"fuzz: {examples} examples per property x 2 properties in {seconds:.0f} s: {result}")
    if proc.returncode:
        print(proc.stdout[-5000:])
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
