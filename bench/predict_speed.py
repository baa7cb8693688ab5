"""Batched ``predict`` against the tutorials' one-image-at-a-time inference loop.

1,000 PNG files of 32x32 (CIFAR-10-like class patterns from ``tests.fakes``) are classified by a
checkpoint of the tutorials' CNN (``model=cnn`` on ``data=cifar10``, trained one short epoch through
``lit_vision.runs.run.train``: only the speed matters here) in two ways:

- baseline, the tutorials' way: load the checkpoint, then for each file open it with PIL, convert to RGB,
  scale to [0, 1], normalise with the checkpoint's mean/std, make a ``(1, C, H, W)`` tensor and call the
  model, keeping the top class;
- ``lit_vision.inference.predict``: the whole command (checkpoint loading, finding the files, decoding with
  EXIF orientation in a background thread while the batches of 256 go through ``Trainer.predict``, top-k
  CSV, ``predict.json``), with the grid picture switched off (``grid=0``, a fixed cost of a few tiles).

Both start from the checkpoint file and run after a warm-up (imports, first call) with the process's
default threads; each is timed ``repeats`` times and the median is kept; ratio = loop seconds / predict
seconds (the issue's target: at least 5). The loop does less: no CSV, no EXIF check, no file search. Run it
on a quiet machine: ``python -m bench --case predict_speed`` (``--quick``: 200 images, for
checking the wiring).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.compose import compose_train_config
from bench.report import device_name


def make_checkpoint(workdir: Path) -> Path:
    """A CNN checkpoint trained briefly on generated CIFAR-10 files (real data_info: names, mean, std)."""
    from lit_vision.runs.run import train
    from tests.fakes import make_cifar10

    root = make_cifar10(workdir / "cifar", n_train=200, n_test=40)
    cfg = compose_train_config(
        [
            "data=cifar10",
            f"data.root={root}",
            "model=cnn",
            "logger=none",
            "callbacks=[model_checkpoint]",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
        ],
        workdir / "run",
    )
    metrics, _ = train(cfg)
    return Path(metrics["best_model_path"])


def write_images(folder: Path, count: int) -> list[Path]:
    """``count`` 32x32 RGB PNG files."""
    from tests.fakes import class_images

    images, _ = class_images(10, count, 32, channels=3, seed=1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def one_by_one(net: torch.nn.Module, paths: list[Path], mean: list[float], std: list[float]) -> list[int]:
    """The tutorials' inference: open, preprocess and predict each image on its own."""
    mean_a, std_a = np.asarray(mean), np.asarray(std)
    classes = []
    with torch.no_grad():
        for path in paths:
            array = np.asarray(Image.open(path).convert("RGB")) / 255.0
            array = ((array - mean_a) / std_a).transpose(2, 0, 1)
            x = torch.from_numpy(array).float().unsqueeze(0)
            classes.append(int(net(x).softmax(dim=1).argmax()))
    return classes


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool) -> list[dict[str, Any]]:
    from lit_vision.inference.api import predict
    from lit_vision.inference.checkpoint import load_model

    count, repeats, batch_size = (200, 1, 64) if quick else (1000, 3, 256)
    with tempfile.TemporaryDirectory(prefix="lit_vision_bench_predict_") as tmp:
        workdir = Path(tmp)
        ckpt = make_checkpoint(workdir)
        paths = write_images(workdir / "images", count)

        def loop_from_checkpoint(files: list[Path]) -> list[int]:
            model = load_model(ckpt)
            mean, std = model.data_info["mean"], model.data_info["std"]
            return one_by_one(model.task.net.eval(), files, mean, std)

        def batched() -> None:
            predict(ckpt, workdir / "images", workdir / "out", batch_size=batch_size, grid=0, top_k=1)

        loop_from_checkpoint(paths[:20])  # warm-up
        batched()
        loop = _median_seconds(lambda: loop_from_checkpoint(paths), repeats)
        batch = _median_seconds(batched, repeats)
        loop_classes = loop_from_checkpoint(paths)
        import csv

        with open(workdir / "out" / "predictions.csv", newline="") as handle:
            predicted = [int(r["top1_index"]) for r in csv.DictReader(handle)]
        agree = float(np.mean(np.asarray(predicted) == np.asarray(loop_classes)))
    return [
        {
            "case": "predict_speed",
            "setting": f"{count} PNGs 32x32, CNN; predict batch {batch_size} vs one-by-one loop",
            "device": device_name(),
            "metric": "seconds (predict / loop)",
            "value": round(batch, 3),
            "baseline": round(loop, 3),
            "ratio": round(loop / batch, 2),
            "note": (
                f"target >= 5x; same top class for {agree:.1%} of images; median of {repeats}; "
                f"{torch.get_num_threads()} torch threads; both from the checkpoint file; the loop writes no "
                "CSV and skips EXIF"
            ),
        }
    ]
