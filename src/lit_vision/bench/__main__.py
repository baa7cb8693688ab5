"""``python -m lit_vision.bench [--case NAME ...] [--quick] [--out bench]``: run the benchmark cases."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from lit_vision.bench import CASES
from lit_vision.bench.report import load_results, merge_case, write_reports

ROOT = Path(__file__).resolve().parents[3]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_vision.bench", description=__doc__)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for checking the wiring")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="folder for results.json/.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="README to refresh")
    args = parser.parse_args(argv)

    names = args.case or list(CASES)
    if not names:
        print("no benchmark cases are registered", file=sys.stderr)
        return 1
    results = load_results(args.out / "results.json")
    for name in names:
        module = importlib.import_module(f"lit_vision.bench.{CASES[name]}")
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        rows = module.run(quick=args.quick)
        merge_case(results, name, rows, time.perf_counter() - start)
        write_reports(results, args.out, None if args.quick else args.readme)
        for row in rows:
            print(f"  {row}", flush=True)
    print(f"[bench] wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
