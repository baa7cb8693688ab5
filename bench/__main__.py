"""``python -m bench [--case NAME ...] [--all] [--quick] [--out bench] [--data DIR]``: run the benchmark cases.

Without ``--case`` every case of ``CASES`` runs except the ``EXTRA_CASES`` (longer variants, run them by
name or with ``--all``). A case that fails gets an ``error`` row and the suite goes on; the exit status is 1
if any failed. ``--quick`` uses small sizes to check the wiring (its numbers mean nothing) and writes to
``bench/quick/`` unless ``--out`` is given. The results go to ``results.json`` and ``results.md`` only.
``--data`` names the folder of real data sets (default ``<repo>/../shared/data``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from bench import CASES, EXTRA_CASES
from bench.paths import DATA_ENV, ROOT, shared_data_dir
from bench.report import device_name, load_results, make_row, merge_case, suite_info, write_reports


def selected_cases(names: list[str] | None, run_all: bool) -> list[str]:
    """The cases to run, in ``CASES`` order."""
    if names:
        return [name for name in CASES if name in names]
    return [name for name in CASES if run_all or name not in EXTRA_CASES]


def run_case(name: str, quick: bool) -> list[dict]:
    """The case's rows, or one ``error`` row saying why it failed."""
    import torch

    threads = torch.get_num_threads()  # a recipe's torch_threads must not leak into the next case
    try:
        module = importlib.import_module(f"bench.{CASES[name]}")
        return module.run(quick=quick)
    except Exception as exc:  # a broken case must not stop the suite
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        return [make_row(name, "the case failed", device_name(), "error", None, note=message)]
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--all", action="store_true", help="also the extra (longer) cases")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--quick", action="store_true", help="small sizes, for checking the wiring")
    parser.add_argument(
        "--out", type=Path, help="folder for results.json/.md (default bench/, quick: bench/quick/)"
    )
    parser.add_argument(
        "--data", type=Path, help=f"folder of the real data sets (default: {shared_data_dir()})"
    )
    args = parser.parse_args(argv)

    if args.list:
        for name in CASES:
            print(f"{name}{' (extra)' if name in EXTRA_CASES else ''}")
        return 0
    out = args.out or (ROOT / "bench" / "quick" if args.quick else ROOT / "bench")
    names = selected_cases(args.case, args.all)
    if not names:
        print("no benchmark cases are registered", file=sys.stderr)
        return 1
    if args.data is not None:
        os.environ[DATA_ENV] = str(args.data.resolve())
    results = load_results(out / "results.json")
    failed = []
    suite_start = time.perf_counter()
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        rows = run_case(name, args.quick)
        seconds = time.perf_counter() - start
        merge_case(results, name, rows, seconds, quick=args.quick)
        if any(row.get("metric") == "error" for row in rows):
            failed.append(name)
        for row in rows:
            print(f"  {row}", flush=True)
        print(f"[bench] {name}: {seconds:.1f} s", flush=True)
        write_reports(results, out)  # keep what is done if a later case is interrupted
    total = time.perf_counter() - suite_start
    results["suite"] = suite_info(names, total, args.quick)
    write_reports(results, out)
    print(
        f"[bench] {len(names)} case(s) in {total:.1f} s; wrote {out / 'results.json'} and {out / 'results.md'}"
    )
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
