"""`make bench`: run every benchmark module in this folder (or the ones named) and print their tables.

Each module exposes `main(argv: list[str]) -> int` and prints its own table; speed goals are checked here,
never by timed tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    status = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n== bench.{name} ==", flush=True)
        status |= int(module.main([]) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
