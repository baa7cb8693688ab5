"""The GPU measurements in one command: ``make bench-gpu`` (``python -m bench.gpu [--dry-run] [--out DIR]``).

On a machine with a CUDA GPU, in well under 8 minutes:

1. ``cifar10_fast``: ``experiment=cifar10_fast`` training throughput (bf16-mixed, channels_last, compile,
   data resident on the GPU) in images/s and model FLOP utilisation against the card's bf16 peak;
2. ``precision``: median step times of 16-mixed, bf16-mixed and 32-true per model family;
3. ``ddp_smoke``: when two or more GPUs are visible, a 2-process DDP run of the default experiment
   (``trainer=ddp trainer.devices=2``, a few batches), reported as passed or failed with its seconds.

Results go to ``<out>/results.json`` and ``<out>/results.md`` (default ``bench/gpu``), one row per figure
with the card named. ``--dry-run`` checks the wiring on any machine: the case modules import, the DDP
command's overrides compose, and ``<out>`` gets one "planned" row per step; nothing is trained.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import CASES
from bench.compose import compose_train_config
from bench.report import device_name, load_results, make_row, merge_case, write_reports

ROOT = Path(__file__).resolve().parents[1]
GPU_CASES = ("cifar10_fast", "precision")
DDP_CASE = "ddp_smoke"
DDP_OVERRIDES = (
    "trainer=ddp",
    "trainer.devices=2",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=10",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "logger=none",
    "callbacks=[model_checkpoint]",
)


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def ddp_smoke(workdir: Path) -> dict:
    """Run the default experiment on two GPUs with DDP; one row: passed/failed and the seconds."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *DDP_OVERRIDES, f"hydra.run.dir={workdir}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    passed = proc.returncode == 0 and (workdir / "metrics.json").is_file()
    note = "passed" if passed else f"failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    return make_row(
        DDP_CASE, " ".join(DDP_OVERRIDES), device_name(), "wall s (2-process DDP run)", seconds, note=note
    )


def plan_rows(gpus: int) -> dict[str, list[dict]]:
    """``--dry-run``: check each step can start and return one "planned" row per step."""
    device = device_name()
    rows = {}
    for case in GPU_CASES:
        importlib.import_module(f"bench.{CASES[case]}")  # the case module must import
        rows[case] = [
            make_row(case, "dry run", device, "planned", None, note=f"python -m bench --case {case}")
        ]
    with tempfile.TemporaryDirectory(prefix="lit_vision_gpu_plan_") as tmp:
        cfg = compose_train_config(list(DDP_OVERRIDES), Path(tmp))  # the overrides must compose
    runs = "runs" if gpus >= 2 else f"skipped here: {gpus} GPU(s) visible, needs 2"
    note = f"{cfg.trainer.strategy} on {cfg.trainer.devices} devices; {runs}"
    rows[DDP_CASE] = [make_row(DDP_CASE, " ".join(DDP_OVERRIDES), device, "planned", None, note=note)]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dry-run", action="store_true", help="check the wiring, train nothing (any machine)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "gpu", help="folder for results.json/.md"
    )
    args = parser.parse_args(argv)

    gpus = visible_gpus()
    results = load_results(args.out / "results.json")
    if args.dry_run:
        for case, rows in plan_rows(gpus).items():
            merge_case(results, case, rows, 0.0, quick=True)
        write_reports(results, args.out)
        print(f"[bench.gpu] dry run: {', '.join((*GPU_CASES, DDP_CASE))} can start; wrote {args.out}")
        return 0
    if gpus == 0:
        print("[bench.gpu] no CUDA GPU visible: run it on a GPU machine (or --dry-run here)", file=sys.stderr)
        return 2
    from bench.__main__ import main as bench_main

    status = bench_main([arg for case in GPU_CASES for arg in ("--case", case)] + ["--out", str(args.out)])
    results = load_results(args.out / "results.json")
    if gpus >= 2:
        with tempfile.TemporaryDirectory(prefix="lit_vision_ddp_smoke_") as tmp:
            start = time.perf_counter()
            row = ddp_smoke(Path(tmp) / "run")
            merge_case(results, DDP_CASE, [row], time.perf_counter() - start)
            status = status or (0 if row["note"] == "passed" else 1)
    write_reports(results, args.out)
    print(f"[bench.gpu] wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
