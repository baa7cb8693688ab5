"""Weight averaging (EMA, SWA) vs none on real photos: cats81 k-fold, the default cats recipe (``model=unet data=cats``).

For each fold (``data.num_folds=3 data.fold=i`` on ``../shared/data/cats81``, train+val re-cut, the fold
validating) and each setting, one fit through ``lit_vision.runs.run.train`` with the CSV logger; from its
``metrics.csv``: the validation IoU of the final weights (the last epoch, averaged weights where EMA is on)
and the epoch-to-epoch stability, the standard deviation of the validation IoU over the last ``TAIL`` epochs.
Nothing is tuned: the settings are fixed before the run, and the numbers are only reported.

Run: ``python -m bench.ema_cats81 [--folds 0 1] [--epochs 30]`` (not one of ``make bench``'s cases: ~4 fits
of 1-3 minutes each on 2 CPU cores). Prints one line per fit and a summary table.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

from bench.compose import compose_train_config
from bench.paths import shared_data_dir

SEED = 42
TAIL = 10
SETTINGS: dict[str, list[str]] = {
    "no EMA": [],
    "EMA decay 0.99": ["callbacks=[model_checkpoint,ema]", "callbacks.ema.decay=0.99"],
    "EMA decay 0.999, no warm-up": ["callbacks=[model_checkpoint,ema]", "callbacks.ema.decay_warmup=false"],
    "EMA decay 0.999 (default: warm-up)": ["callbacks=[model_checkpoint,ema]"],
    "SWA (last 20% of epochs)": ["callbacks=[model_checkpoint,swa]"],
}


def val_curve(metrics_csv: Path, key: str = "val/iou") -> list[float]:
    """The per-epoch values of ``key`` in a Lightning CSVLogger ``metrics.csv`` (epoch order)."""
    by_epoch: dict[int, float] = {}
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get(key):
                by_epoch[int(row["epoch"])] = float(row[key])
    return [by_epoch[e] for e in sorted(by_epoch)]


def fit(setting: list[str], fold: int, epochs: int | None, workdir: Path) -> list[float]:
    """One fit of the default cats recipe on fold ``fold``; its validation IoU per epoch."""
    from lit_vision.runs.run import train

    data = shared_data_dir() / "cats81"
    overrides = [
        "model=unet",
        "data=cats",
        f"data.root={data}",
        "data.num_folds=3",
        f"data.fold={fold}",
        "data.test_fraction=0",
        "logger=csv",
        "callbacks=[model_checkpoint]",
        "trainer.enable_progress_bar=false",
        f"seed={SEED}",
        "test=false",
        *setting,
    ]
    if epochs is not None:
        overrides.append(f"trainer.max_epochs={epochs}")
    cfg = compose_train_config(overrides, workdir)
    train(cfg)
    return val_curve(workdir / "csv" / "metrics.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's (30)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in args.settings}
    with tempfile.TemporaryDirectory(prefix="lit_vision_ema_") as tmp:
        for fold in args.folds:
            for name in args.settings:
                curve = fit(
                    SETTINGS[name],
                    fold,
                    args.epochs,
                    Path(tmp) / f"fold{fold}_{len(results[name])}_{name[:6]}",
                )
                tail = curve[-TAIL:]
                final, spread = curve[-1], statistics.pstdev(tail)
                results[name].append((final, spread))
                print(
                    f"fold {fold} [{name}]: final val IoU {final:.3f}, std over last {len(tail)} epochs "
                    f"{spread:.4f}, curve {', '.join(f'{v:.3f}' for v in curve)}",
                    flush=True,
                )
    print(f"\n| setting | final val IoU per fold | std of val IoU over the last {TAIL} epochs per fold |")
    print("| --- | --- | --- |")
    for name, outs in results.items():
        finals = ", ".join(f"{f:.3f}" for f, _ in outs)
        spreads = ", ".join(f"{s:.4f}" for _, s in outs)
        print(f"| {name} | {finals} | {spreads} |")


if __name__ == "__main__":
    main()
