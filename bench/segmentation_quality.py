"""Cats segmentation: the default recipe (``experiment=cats_unet``) against the tutorial's
(``experiment=cats_tutorial``) on the same real-photo split and budget.

Data: scikit-image's CC0 ``chelsea`` photo with the project's hand-traced labelme polygon. Six training
images are crops, flips, rescales and recolourings of the photo's upper part (rows 0-164); the two held-out
images are crops of its lower part (rows 165-299), which no training image contains: the lower part
shows the cat's muzzle, whiskers and chin and, on the right, a pale blurred background that the training
crops do not have (theirs is the dark wall and the grey top-left corner). It is one photo, so this checks
generalisation to unseen regions of the same scene, not to other cats.

Both recipes run through ``lit_vision.runs.run.train`` with the same overrides: 128 x 128 inputs, 100 epochs,
the same seed, CPU, no validation, no callbacks or loggers (pure training time). The held-out IoU is the
cat IoU (the tutorial's mIoU without background) of the weights at the end of training, on the two
held-out images. ``fit_seconds`` is the wall time of ``trainer.fit``; the ratio cats_unet / tutorial
is the time criterion (at most 1.2).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.compose import compose_train_config
from bench.report import device_name
from lit_vision.data.segmentation.folder import SPLIT_DIR
from lit_vision.data.segmentation.sample import Variant, write_variants

RECIPES = {"default": "cats_unet", "tutorial": "cats_tutorial"}
IMAGE_SIZE = 128
EPOCHS = 100
SEEDS = (42,)

# Upper part of the photo (rows 0-164) for training; lower part (rows 165-299) held out.
TRAIN_VARIANTS: tuple[Variant, ...] = (
    Variant("train_0", (0, 0, 451, 165)),
    Variant("train_1", (0, 0, 240, 165), hflip=True),
    Variant("train_2", (200, 0, 451, 165), brightness=1.2),
    Variant("train_3", (90, 0, 400, 165), scale=0.8, saturation=0.6),
    Variant("train_4", (0, 0, 451, 165), hflip=True, contrast=1.2, hue=0.03),
    Variant("train_5", (260, 0, 451, 165), scale=1.2),
)
HELD_OUT_VARIANTS: tuple[Variant, ...] = (
    Variant("heldout_0", (0, 165, 451, 300)),
    Variant("heldout_1", (150, 165, 451, 300)),
)


def write_split(folder: Path) -> Path:
    """Write the 6 + 2 labelme pairs and ``ImageSets/Segmentation/{train,val}.txt`` (val = held out)."""
    write_variants(folder, TRAIN_VARIANTS + HELD_OUT_VARIANTS)
    lists = folder / SPLIT_DIR
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "train.txt").write_text("".join(f"{v.name}\n" for v in TRAIN_VARIANTS))
    (lists / "val.txt").write_text("".join(f"{v.name}\n" for v in HELD_OUT_VARIANTS))
    return folder


def recipe_overrides(experiment: str, data_root: Path, epochs: int, seed: int) -> list[str]:
    """The same budget for every recipe: size, epochs, seed, CPU, and nothing but training and the test."""
    return [
        f"experiment={experiment}",
        f"data.root={data_root}",
        f"data.image_size={IMAGE_SIZE}",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        "callbacks=none",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def train_recipe(
    experiment: str, data_root: Path, workdir: Path, epochs: int, seed: int, extra: Sequence[str] = ()
) -> dict[str, float]:
    """Train one recipe; return its held-out cat IoU and Dice, fit wall seconds and process CPU seconds
    (CPU time is less disturbed than wall time when other jobs share the machine)."""
    from lit_vision.runs.run import train

    cfg = compose_train_config([*recipe_overrides(experiment, data_root, epochs, seed), *extra], workdir)
    cpu = time.process_time()
    metrics, _ = train(cfg)
    return {
        "iou": float(metrics["test/iou"]),
        "dice": float(metrics["test/dice"]),
        "seconds": float(metrics["fit_seconds"]),
        "cpu_seconds": time.process_time() - cpu,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    epochs = 2 if quick else EPOCHS
    results: dict[str, list[dict[str, float]]] = {name: [] for name in RECIPES}
    with tempfile.TemporaryDirectory(prefix="lit_vision_seg_bench_") as tmp:
        data_root = write_split(Path(tmp) / "cats_split")
        for seed in SEEDS:
            for name, experiment in RECIPES.items():
                out = train_recipe(experiment, data_root, Path(tmp) / f"{name}_{seed}", epochs, seed)
                print(
                    f"  [{experiment} seed {seed}] held-out IoU {out['iou']:.4f}, fit {out['seconds']:.1f} s"
                )
                results[name].append(out)

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in results[name])

    setting = (
        f"chelsea: 6 train crops (rows 0-164) / 2 held-out crops (rows 165-299), {IMAGE_SIZE}px, "
        f"{epochs} epochs, seeds {list(SEEDS)}"
    )
    device = device_name()
    iou, iou_base = mean("default", "iou"), mean("tutorial", "iou")
    dice, dice_base = mean("default", "dice"), mean("tutorial", "dice")
    secs, secs_base = mean("default", "seconds"), mean("tutorial", "seconds")
    cpu, cpu_base = mean("default", "cpu_seconds"), mean("tutorial", "cpu_seconds")
    return [
        {
            "case": "segmentation_quality",
            "setting": setting,
            "device": device,
            "metric": "held-out cat IoU, cats_unet vs cats_tutorial",
            "value": round(iou, 4),
            "baseline": round(iou_base, 4),
            "ratio": round(iou / max(iou_base, 1e-9), 3),
            "note": "higher is better; weights at the end of training",
        },
        {
            "case": "segmentation_quality",
            "setting": setting,
            "device": device,
            "metric": "held-out cat Dice, cats_unet vs cats_tutorial",
            "value": round(dice, 4),
            "baseline": round(dice_base, 4),
            "ratio": round(dice / max(dice_base, 1e-9), 3),
            "note": "higher is better",
        },
        {
            "case": "segmentation_quality",
            "setting": setting,
            "device": device,
            "metric": "fit wall time (s), cats_unet vs cats_tutorial",
            "value": round(secs, 1),
            "baseline": round(secs_base, 1),
            "ratio": round(secs / max(secs_base, 1e-9), 3),
            "note": "acceptance: ratio <= 1.2 (time it on a quiet machine)",
        },
        {
            "case": "segmentation_quality",
            "setting": setting,
            "device": device,
            "metric": "process CPU time (s), cats_unet vs cats_tutorial",
            "value": round(cpu, 1),
            "baseline": round(cpu_base, 1),
            "ratio": round(cpu / max(cpu_base, 1e-9), 3),
            "note": "fit + test, all threads; steadier than wall time on a shared machine",
        },
    ]
