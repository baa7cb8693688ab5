"""The GPU path: ``experiment=cifar10_fast`` images per second and model FLOPs utilisation, against airbench
(the fastest public CIFAR-10 training loop) on the same GPU in the same run.

Data: random uint8 images of CIFAR-10's shape and random labels (50,000 train + 10,000 test), written as
CIFAR-10 python pickles for lit_vision and in airbench's ``{train,test}.pt`` format for airbench: only the
speed is measured, so the accuracy of either means nothing here.

- lit_vision: ``lit_vision.runs.run.train`` for ``experiment=cifar10_fast`` (dataset resident on the GPU,
  crop + flip on the GPU, channels_last, bf16-mixed, torch.compile, ResNet-18 at batch 512) for
  ``EPOCHS`` epochs without the final test; images/s = training images over the time of epochs 2.. from
  ``bench.clocks.StepClock`` (steps + gaps: compilation in epoch 1 is left out);
- MFU = training FLOPs per image (forward + backward of the net, counted by
  ``torch.utils.flop_counter.FlopCounterMode``) x images/s / the GPU's dense bf16 peak (datasheet value
  for the recognised GPUs below; unknown GPUs get no MFU);
- airbench: ``airbench.train94`` on the same random data (``pip install airbench``; skipped with a note when
  it is not installed), timed from call to return (its own warm-up run first); images/s = epochs x 50,000 /
  seconds.

On a machine without a CUDA GPU the case writes one row saying so.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import open_dict

from bench.clocks import StepClock
from bench.report import device_name, make_row

EPOCHS = 5
N_TRAIN, N_TEST = 50_000, 10_000
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, FLOP/s; matched in this order.
BF16_PEAK = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM (HBM3)
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
)


def bf16_peak(name: str) -> float | None:
    """The dense bf16 peak of a GPU named ``name``, if known."""
    return next((peak for key, peak in BF16_PEAK if key in name), None)


def train_flops_per_image(net: torch.nn.Module, image_size: int = 32) -> float:
    """Forward + backward FLOPs of ``net`` per image (counted on the CPU in float32 on a batch of 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        net(x).sum().backward()
    return counter.get_total_flops() / 2


def random_cifar(n_train: int, n_test: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        split: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n))
        for split, n in (("train", n_train), ("test", n_test))
    }


def run_lit_vision(root: Path, epochs: int, workdir: Path) -> dict[str, Any]:
    from bench.compose import compose_train_config
    from lit_vision.runs.run import train

    cfg = compose_train_config(
        ["experiment=cifar10_fast", f"data.root={root}", f"trainer.max_epochs={epochs}", "test=false"],
        workdir,
    )
    clock = workdir / "steps.json"
    with open_dict(cfg):
        cfg.callbacks["bench_step_clock"] = {
            "_target_": f"{StepClock.__module__}.StepClock",
            "path": str(clock),
        }
    train(cfg)
    records = json.loads(clock.read_text())["steps"]
    later = [r for r in records if r[0] >= 1 and r[2] == r[2]]
    seconds = sum(r[2] + r[3] for r in later)
    images = len(later) * int(cfg.data.batch_size)
    return {"images_per_s": images / seconds, "batch": int(cfg.data.batch_size), "epochs": epochs}


def run_airbench(data: dict[str, tuple[np.ndarray, np.ndarray]], workdir: Path) -> dict[str, Any] | str:
    """airbench94 on the same random data; its images/s, or why it did not run."""
    try:
        import airbench
    except ImportError:
        return "airbench is not installed (pip install airbench)"
    folder = workdir / "cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    classes = [f"class{i}" for i in range(10)]
    for split, (images, labels) in data.items():
        payload = {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels), "classes": classes}
        torch.save(payload, folder / f"{split}.pt")
    previous = Path.cwd()
    os.chdir(workdir)  # airbench reads ./cifar10/{train,test}.pt
    try:
        loader = airbench.CifarLoader(
            "cifar10", train=True, batch_size=1024, aug={"flip": True, "translate": 2}
        )
        if hasattr(airbench, "warmup94"):
            airbench.warmup94()
        torch.cuda.synchronize()
        start = time.perf_counter()
        airbench.train94(loader, verbose=False)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        epochs = float(
            getattr(getattr(airbench, "lib_airbench94", None), "hyp", {})
            .get("opt", {})
            .get("train_epochs", 9.9)
        )
    except Exception as exc:  # an API change in airbench must not fail the suite
        return f"airbench failed: {type(exc).__name__}: {exc}"
    finally:
        os.chdir(previous)
    return {"images_per_s": epochs * len(data["train"][1]) / seconds, "seconds": seconds, "epochs": epochs}


def run(quick: bool) -> list[dict[str, Any]]:
    device = device_name()
    setting = (
        "experiment=cifar10_fast (ResNet-18, batch 512, resident data, bf16-mixed, channels_last, compile)"
    )
    if not torch.cuda.is_available():
        return [
            make_row(
                "cifar10_fast",
                setting,
                device,
                "train images/s",
                None,
                note="not run: the GPU path needs a CUDA GPU (python -m bench --case cifar10_fast there)",
            )
        ]
    from lit_vision.data.writers import write_cifar10_layout
    from lit_vision.nets.resnet import ResNet

    n_train, n_test, epochs = (5_000, 1_000, 2) if quick else (N_TRAIN, N_TEST, EPOCHS)
    data = random_cifar(n_train, n_test)
    with tempfile.TemporaryDirectory(prefix="lv-bench-fast-") as tmp:
        tmp = Path(tmp)
        root = write_cifar10_layout(
            tmp / "data", data["train"], data["test"], [f"class{i}" for i in range(10)]
        )
        lit = run_lit_vision(root.parent if root.name == "cifar-10-batches-py" else root, epochs, tmp / "run")
        airbench = run_airbench(data, tmp / "airbench")
    flops = train_flops_per_image(ResNet(depth=18, num_classes=10, in_channels=3, cifar_stem=True))
    peak = bf16_peak(torch.cuda.get_device_name(0))
    achieved = flops * lit["images_per_s"]
    rows = [
        make_row(
            "cifar10_fast",
            f"{setting}; random CIFAR-shaped data, {n_train} train images",
            device,
            "train images/s",
            lit["images_per_s"],
            airbench["images_per_s"] if isinstance(airbench, dict) else None,
            "epochs 2.. of "
            f"{epochs} (compilation in epoch 1 left out); baseline: airbench94 on the same data and GPU"
            + ("" if isinstance(airbench, dict) else f" ({airbench})"),
        ),
        make_row(
            "cifar10_fast",
            f"{setting}; {flops / 1e9:.2f} GFLOP per training image",
            device,
            "model FLOPs utilisation",
            achieved / peak if peak else None,
            None,
            f"{achieved / 1e12:.1f} TFLOP/s of a {peak / 1e12:.0f} TFLOP/s dense bf16 peak"
            if peak
            else "peak bf16 FLOP/s of this GPU not in the table (bench/cifar10_fast.py)",
            ratio=None,
        ),
    ]
    return rows
