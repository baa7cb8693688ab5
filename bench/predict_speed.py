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

The second part puts ``predict`` against the hardware floor of its input side: the seconds PIL takes to
decode the same files to RGB arrays (``Image.open(path).convert("RGB")``, nothing else), the faster of one
thread and a pool of one thread per core, on the same cores. The files are real CIFAR-10 photos
(``cifar10_jpeg/train`` of the shared data, ``PHOTOS_PER_CLASS`` per class; the generated PNGs when that
folder is missing), at the precision ``lit-predict`` uses (``auto``). The issue's target: predict at most
1.3x the floor. The note splits predict's time into
the fixed part (``predict`` of 8 files: checkpoint, Trainer, writers) and the model's forward passes alone.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.compose import compose_train_config
from bench.paths import shared_data_dir
from bench.report import device_name, make_row

PHOTOS_PER_CLASS, QUICK_PHOTOS_PER_CLASS = 500, 20
FLOOR_TARGET = 1.3


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
        floor_rows = decode_floor_rows(ckpt, workdir, quick, batch_size, repeats)
    return [
        *floor_rows,
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
        },
    ]


# ------------------------------------------------------------------------------ the decode floor
def copy_photos(target: Path, per_class: int) -> tuple[list[Path], str] | None:
    """The first ``per_class`` real CIFAR-10 JPEGs of every class copied flat into ``target``; None when the
    shared data has no such folder."""
    root = shared_data_dir() / "cifar10_jpeg" / "train"
    if not root.is_dir():
        return None
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir())[:per_class]:
            copy = target / f"{folder.name}_{path.name}"
            shutil.copyfile(path, copy)
            paths.append(copy)
    return paths, f"{len(paths)} real CIFAR-10 JPEGs (32x32, {per_class} per class)"


def decode(path: Path) -> np.ndarray:
    """What every image reader must do at least: decode the file to an RGB array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def decode_floor_seconds(paths: list[Path], repeats: int) -> tuple[float, str]:
    """The faster of decoding ``paths`` in one thread and in a pool of one thread per core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def pooled() -> None:
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(decode, paths, chunksize=64))

    one = _median_seconds(lambda: [decode(p) for p in paths], repeats)
    many = _median_seconds(pooled, repeats) if cores > 1 else float("inf")
    return (one, "1 thread") if one <= many else (many, f"{cores} threads")


def forward_seconds(ckpt: Path, paths: list[Path], batch_size: int, repeats: int, summary: dict) -> float:
    """The model's forward passes alone over the decoded, normalised images (no files, no writers), in the
    layout and precision predict used (``summary``: its predict.json)."""
    from lit_vision.inference.checkpoint import load_model
    from lit_vision.utils.hardware import wants_channels_last

    model = load_model(ckpt)
    mean = torch.tensor(model.data_info["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(model.data_info["std"]).view(1, -1, 1, 1)
    net = model.task.net.eval()
    layout = torch.channels_last if wants_channels_last("auto", net, torch.device("cpu"), "32-true") else None
    if layout is not None:
        net = net.to(memory_format=layout)
    images = torch.from_numpy(np.stack([decode(p) for p in paths])).permute(0, 3, 1, 2)
    batches = [(b.float() / 255 - mean) / std for b in images.split(batch_size)]
    if layout is not None:
        batches = [b.contiguous(memory_format=layout) for b in batches]
    bf16 = summary.get("precision") == "bf16-mixed"

    def forward_all() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for batch in batches:
                net(batch)

    forward_all()
    return _median_seconds(forward_all, repeats)


def decode_floor_rows(
    ckpt: Path, workdir: Path, quick: bool, batch_size: int, repeats: int
) -> list[dict[str, Any]]:
    """``predict`` on real photos against the PIL decode floor of the same files (module doc)."""
    from lit_vision.inference.api import predict

    found = copy_photos(workdir / "photos", QUICK_PHOTOS_PER_CLASS if quick else PHOTOS_PER_CLASS)
    if found is None:
        paths = sorted((workdir / "images").glob("*.png"))
        what = f"{len(paths)} generated 32x32 PNGs (no cifar10_jpeg/train in {shared_data_dir()})"
        folder = workdir / "images"
    else:
        (paths, what), folder = found, workdir / "photos"
    small = workdir / "eight"
    small.mkdir()
    for path in paths[:8]:
        shutil.copyfile(path, small / path.name)

    from lit_vision.utils.hardware import auto_precision

    # the precision `lit-predict` runs at (its trainer config's `auto`: bf16-mixed on a CPU with native bf16)
    trainer = {"accelerator": "cpu", "precision": auto_precision("cpu")}

    def run_predict(source: Path, out: str) -> None:
        predict(ckpt, source, workdir / out, batch_size=batch_size, grid=0, top_k=1, trainer=trainer)

    run_predict(folder, "warm")  # imports, first calls, the files in the page cache
    floor, how = decode_floor_seconds(paths, repeats)
    seconds = _median_seconds(lambda: run_predict(folder, "floor_out"), repeats)
    fixed = _median_seconds(lambda: run_predict(small, "eight_out"), repeats)
    summary = json.loads((workdir / "floor_out" / "predict.json").read_text())
    forward = forward_seconds(ckpt, paths, batch_size, repeats, summary)
    count = len(paths)
    note = (
        f"target <= {FLOOR_TARGET}x; predict {count / seconds:,.0f} images/s, decode floor {count / floor:,.0f} "
        f"images/s ({how}); of predict's {seconds:.3f} s: fixed part (predict of 8 files) {fixed:.3f} s, "
        f"forward passes alone {forward:.3f} s ({summary.get('precision')}); median of {repeats}; "
        f"{torch.get_num_threads()} torch threads"
    )
    return [
        make_row(
            "predict_speed",
            f"{what}, CNN checkpoint; lit_vision.inference.predict (batch {batch_size}) vs PIL decode only",
            device_name(),
            "seconds (predict / decode floor)",
            seconds,
            floor,
            note,
        )
    ]
