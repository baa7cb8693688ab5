"""Training step time per model family under each precision and memory layout, through lit_vision.

Families (each its project recipe, on generated or shipped data in the real formats):

- ``cnn``: ``experiment=mnist_cnn`` (the tutorial CNN, 28x28 grey, batch 64) on digits written as MNIST;
- ``resnet``: ``model=resnet model.net.cifar_stem=true`` (ResNet-18) on CIFAR-10-shaped files, batch 128;
- ``unet``: ``experiment=cats_unet`` (UNet, 128x128, batch 2) on the chelsea labelme sample;
- ``mlp``: ``experiment=temps`` (the temperature MLP, batch 64) on the shipped weather table.

Settings: ``32-true`` (NCHW, the baseline), ``32-true + channels_last``, ``bf16-mixed`` (with and without
channels_last), and ``defaults`` (what ``trainer.precision`` and ``model.channels_last: auto`` resolve to on
this machine, named in the row). On a GPU ``16-mixed`` is added. A CPU without native bf16 (no AVX-512 BF16
or AMX: torch emulates it) runs the bf16 settings only for the two small families and a few steps, enough to
show the cost; the large families get a row saying they were skipped.

Each setting is one ``lit_vision.runs.run.train`` run (no callbacks or logger, no validation, no test) of a
fixed number of steps; ``bench.clocks.StepClock`` times every step (forward, backward, optimizer, step
hooks) and the median of the steps after the first two is reported, with the ratio to 32-true.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.clocks import train_steps_with_clock
from bench.report import device_name, make_row
from lit_vision.utils.hardware import cpu_has_native_bf16

SEED = 42
WARMUP_STEPS = 2


@dataclass(frozen=True)
class Family:
    """A model family: its recipe overrides (``{data}`` = the prepared data folder) and step budget."""

    description: str
    overrides: tuple[str, ...]
    conv: bool
    steps: int
    quick_steps: int
    small: bool  # cheap enough to show emulated bf16


FAMILIES: dict[str, Family] = {
    "cnn": Family(
        "tutorial CNN, 28x28x1, batch 64", ("experiment=mnist_cnn", "data.root={data}"), True, 30, 6, True
    ),
    "resnet": Family(
        "ResNet-18 (CIFAR stem), 32x32x3, batch 128",
        ("data=cifar10", "data.root={data}", "model=resnet", "model.net.cifar_stem=true", "optim=sgd"),
        True,
        4,
        3,
        False,
    ),
    "unet": Family(
        "UNet (16 features, depth 4), 128x128x3, batch 2",
        ("experiment=cats_unet", "paths.data_dir={data}"),
        True,
        12,
        4,
        False,
    ),
    "mlp": Family(
        "temperature MLP (1 hidden layer of 128), batch 64",
        ("experiment=temps", "paths.data_dir={data}"),
        False,
        40,
        6,
        True,
    ),
}


def settings(family: Family, cuda: bool, native_bf16: bool) -> dict[str, list[str] | None]:
    """Setting name -> overrides (None: skipped on this machine)."""
    # the settings but the fused row and "defaults" pin the per-parameter optimizer step (optim.fused=false)
    plain_step = "optim.fused=false"
    out: dict[str, list[str] | None] = {
        "32-true": ["trainer.precision=32-true", "model.channels_last=false", plain_step],
        "32-true + fused optimizer step": [
            "trainer.precision=32-true",
            "model.channels_last=false",
            "optim.fused=true",
        ],
    }
    if family.conv:
        out["32-true + channels_last"] = ["trainer.precision=32-true", "model.channels_last=true", plain_step]
    bf16_ok = cuda or native_bf16 or family.small
    out["bf16-mixed"] = (
        ["trainer.precision=bf16-mixed", "model.channels_last=false", plain_step] if bf16_ok else None
    )
    if family.conv and (cuda or native_bf16):
        out["bf16-mixed + channels_last"] = [
            "trainer.precision=bf16-mixed",
            "model.channels_last=true",
            plain_step,
        ]
    if cuda:
        out["16-mixed + channels_last" if family.conv else "16-mixed"] = [
            "trainer.precision=16-mixed",
            f"model.channels_last={str(family.conv).lower()}",
        ]
    out["defaults"] = []
    return out


def prepare_data(name: str, folder: Path, quick: bool) -> Path:
    """Write the family's data in its real format under ``folder``."""
    folder.mkdir(parents=True)
    if name == "cnn":
        from lit_vision.tools.digits_as_mnist import write_digits_as_mnist

        write_digits_as_mnist(folder, test_fraction=0.2, seed=0, copies=1, gz=False)
    elif name == "resnet":
        from tests.fakes import make_cifar10

        return make_cifar10(folder, n_train=200 if quick else 800, n_test=20)
    return folder  # cats_unet writes its sample under paths.data_dir; temps reads the shipped table


def step_seconds(family: Family, data: Path, overrides: list[str], steps: int, workdir: Path) -> dict:
    """Median training-step seconds of one run (steps after the warm-up ones) and its resolved settings."""
    threads = torch.get_num_threads()  # a recipe may set torch_threads; every setting gets the suite's
    recipe = [o.format(data=data) for o in family.overrides]
    try:
        measured = train_steps_with_clock(
            [*recipe, f"seed={SEED}", "torch_threads=null", *overrides], steps, workdir
        )
    finally:
        torch.set_num_threads(threads)
    timed = [r[3] for r in measured["steps"][WARMUP_STEPS:]] or [r[3] for r in measured["steps"]]
    return {"median": statistics.median(timed), **measured["settings"]}


def run(quick: bool) -> list[dict[str, Any]]:
    cuda = torch.cuda.is_available()
    native = cpu_has_native_bf16()
    device = device_name()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lv-bench-precision-") as tmp:
        for name, family in FAMILIES.items():
            data = prepare_data(name, Path(tmp) / name / "data", quick)
            steps = family.quick_steps if quick else family.steps
            size = ["data.batch_size=16"] if quick and name == "resnet" else []
            results: dict[str, dict | None] = {}
            for setting, overrides in settings(family, cuda, native).items():
                if overrides is None:
                    results[setting] = None
                    continue
                emulated = "bf16" in setting and not (cuda or native)
                n = min(steps, WARMUP_STEPS + 3) if emulated else steps
                workdir = Path(tmp) / name / setting.replace(" ", "").replace("+", "_")
                results[setting] = step_seconds(family, data, [*size, *overrides], n, workdir)
            base = results["32-true"]["median"]
            batch = " (quick: batch 16)" if size else ""
            for setting, result in results.items():
                label = f"{name}: {family.description}{batch}; {setting}"
                rows.append(_row(label, device, result, base, setting, cuda or native))
    return rows


def _row(label: str, device: str, result: dict | None, base: float, setting: str, native: bool) -> dict:
    note = "forward + backward + optimizer, median after 2 warm-up steps"
    if result is None:
        note = (
            "not run: this CPU has no native bf16 (AVX-512 BF16/AMX); torch emulates it, many times slower "
            "than fp32 (see the cnn/mlp rows)"
        )
        return make_row("precision", label, device, "median step s", None, base, note)
    if setting == "defaults":
        layout = "channels_last" if result["channels_last"] else "NCHW"
        note = f"resolved here to {result['precision']}, {layout}; " + note
    elif "bf16" in setting and not native:
        note = "emulated bf16 (no AVX-512 BF16/AMX on this CPU), 3 timed steps; " + note
    return make_row("precision", label, device, "median step s", result["median"], base, note)
