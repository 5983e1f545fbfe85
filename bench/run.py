"""Run every benchmark in bench/ one after another (`make bench`); each writes its own results.

python bench/run.py [NAME ...]      # names: hashing, index, import, scan, service, actions,
                                    # transparency (default: all)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "hashing": [sys.executable, str(HERE / "hashing_bench.py")],
    "index": [sys.executable, str(HERE / "index_bench.py")],
    "import": [sys.executable, str(HERE / "import_bench.py")],
    "scan": [sys.executable, str(HERE / "scan_bench.py")],
    "service": [sys.executable, str(HERE / "service_bench.py")],
    "actions": [sys.executable, str(HERE / "actions_bench.py")],
    "transparency": [sys.executable, str(HERE / "transparency_bench.py")],
}


def main() -> int:
    names = sys.argv[1:] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
        return 2
    failed = 0
    for name in names:
        print(f"== {name}", flush=True)
        failed += subprocess.run(BENCHES[name], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
