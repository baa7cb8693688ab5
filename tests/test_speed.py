"""Speed defaults (precision and layout chosen from the hardware, throttled progress bar, GPU-resident data)
and the benchmark suite's machinery: clocks, the plain loop, the runner and its results.json. No timing is
asserted (that is `make bench`'s job, on a quiet machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from bench import CASES, EXTRA_CASES
from bench.clocks import first_reaching, step_summary, train_images_per_s
from bench.report import make_row, markdown_table, write_reports
from lit_vision.utils import hardware
from tests.helpers import ROOT, compose_cfg, without_hydra


# ----------------------------------------------------------------------------- precision and layout
@pytest.mark.parametrize(
    ("accelerator", "cpu_bf16", "cuda_bf16", "expected"),
    [
        ("cpu", False, False, "32-true"),
        ("cpu", True, False, "bf16-mixed"),
        ("gpu", False, True, "bf16-mixed"),
        ("cuda", False, False, "32-true"),
        ("mps", True, True, "32-true"),
    ],
)
def test_auto_precision_follows_native_bf16(monkeypatch, accelerator, cpu_bf16, cuda_bf16, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(hardware, "cuda_has_native_bf16", lambda: cuda_bf16)
    assert hardware.auto_precision(accelerator) == expected


def test_trainer_precision_defaults_to_the_hardware_choice_and_stays_overridable(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert compose_cfg(["trainer=cpu"]).trainer.precision == "bf16-mixed"
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert compose_cfg(["trainer=cpu"]).trainer.precision == "32-true"
    assert compose_cfg(["trainer=cpu", "trainer.precision=bf16-mixed"]).trainer.precision == "bf16-mixed"


def test_channels_last_auto_rules():
    conv, mlp = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), torch.nn.Sequential(torch.nn.Linear(2, 2))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert hardware.wants_channels_last("auto", conv, cpu, "32-true")
    assert not hardware.wants_channels_last("auto", mlp, cpu, "32-true")
    assert hardware.wants_channels_last("auto", conv, cuda, "bf16-mixed")
    assert not hardware.wants_channels_last("auto", conv, cuda, "32-true")
    assert hardware.wants_channels_last(True, mlp, cpu, "32-true") is True
    with pytest.raises(ValueError, match="channels_last"):
        hardware.wants_channels_last("sometimes", conv, cpu, "32-true")


def _bench_callbacks(cfg, folder: Path, probe_every: int = 2) -> None:
    with open_dict(cfg):
        cfg.callbacks = {
            "model_checkpoint": cfg.callbacks.model_checkpoint,
            "progress_bar": cfg.callbacks.progress_bar,
            "steps": {"_target_": "bench.clocks.StepClock", "path": str(folder / "steps.json")},
            "epochs": {"_target_": "bench.clocks.EpochClock", "path": str(folder / "epochs.json")},
            "probe": {
                "_target_": "bench.clocks.AccuracyProbe",
                "path": str(folder / "probe.json"),
                "every_n_steps": probe_every,
            },
        }


def test_default_run_lays_out_the_cnn_channels_last_and_the_clocks_record_it(tmp_path):
    from lit_vision.runs.run import train

    cfg = without_hydra(
        compose_cfg(
            [
                "logger=none",
                "trainer.max_epochs=2",
                "trainer.limit_train_batches=3",
                "trainer.limit_val_batches=1",
                "trainer.num_sanity_val_steps=0",
                "trainer.enable_model_summary=false",
                "test=false",
            ],
            tmp_path,
        )
    )
    assert cfg.model.channels_last == "auto"
    _bench_callbacks(cfg, tmp_path)
    train(cfg)
    steps = json.loads((tmp_path / "steps.json").read_text())
    assert steps["settings"]["channels_last"] is True  # conv net on a CPU
    assert steps["settings"]["precision"] == hardware.auto_precision("cpu")
    assert [r[:2] for r in steps["steps"]] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert steps["steps"][0][2] != steps["steps"][0][2]  # no gap before an epoch's first batch (NaN)
    summary = step_summary(steps["steps"])
    assert summary["batches"] == 3 and 0.0 <= summary["wait_fraction"] < 1.0
    assert [images for images, _ in steps["train_epochs"]] == [3 * 64, 3 * 64]
    assert train_images_per_s(steps["train_epochs"]) == 192 / steps["train_epochs"][1][1]
    epochs = json.loads((tmp_path / "epochs.json").read_text())
    assert len(epochs) == 2
    assert all(train <= epoch for (_, train), epoch in zip(steps["train_epochs"], epochs, strict=True))
    probe = json.loads((tmp_path / "probe.json").read_text())
    # every 2 steps (global steps 2, 4, 6) and at each of the 2 epoch ends, with the clock increasing
    assert [r[1] for r in probe["records"]] == [2, 3, 4, 6, 6]
    clocks = [r[0] for r in probe["records"]]
    assert clocks == sorted(clocks) and all(0.0 <= r[2] <= 1.0 for r in probe["records"])
    assert probe["train_start"] is not None
    # the clock at each epoch's end (after validation), with the probes' own time taken off
    assert (
        len(probe["epoch_ends"]) == 2
        and probe["train_start"] < probe["epoch_ends"][0] < probe["epoch_ends"][1]
    )
    assert probe["epoch_ends"][1] <= clocks[-1]


def test_explicit_layout_and_nets_without_convolutions_keep_nchw(tmp_path):
    from lit_vision.tasks.classification import ClassificationTask

    cfg = compose_cfg(["model=mlp"])
    assert cfg.model.channels_last is False
    net = {"_target_": "lit_vision.nets.cnn.SimpleCNN", "in_channels": 1, "num_classes": 10, "image_size": 8}
    assert ClassificationTask(net=net, num_classes=10, channels_last=True).channels_last is True
    assert ClassificationTask(net=net, num_classes=10, channels_last="auto").channels_last is False
    with pytest.raises(ValueError, match="channels_last"):
        ClassificationTask(net=net, num_classes=10, channels_last="always")


def test_progress_bar_updates_on_first_and_last_batches_and_then_by_time(monkeypatch):
    from lit_vision.callbacks import progress_bar

    bar = progress_bar.ThrottledRichProgressBar(refresh_rate=10)
    now = [100.0]
    monkeypatch.setattr(progress_bar.time, "monotonic", lambda: now[0])
    assert bar._due("train", 0, 50)  # first batch
    now[0] += 0.01
    assert not bar._due("train", 1, 50)
    assert bar._due("validate", 1, 50)  # each stage has its own clock
    now[0] += 0.1
    assert bar._due("train", 2, 50)
    now[0] += 0.01
    assert bar._due("train", 49, 50)  # last batch: the bar ends exact


def test_in_memory_data_stays_on_the_cpu_without_a_gpu_and_checks_the_setting(tmp_path):
    from lit_vision.data.digits import DigitsDataModule

    dm = DigitsDataModule(resident=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].device.type == "cpu" and batch[0].dtype == torch.uint8
    with pytest.raises(ValueError, match="resident"):
        DigitsDataModule(resident="sometimes")


def test_cifar10_fast_experiment_runs_on_cpu_in_a_fast_dev_run(tmp_path):
    from lit_vision.runs.run import train
    from tests.fakes import make_cifar10

    cfg = compose_cfg(["experiment=cifar10_fast"])
    assert cfg.data.resident is True and cfg.model.channels_last is True and cfg.model.compile is True
    assert cfg.trainer.precision == "bf16-mixed" and cfg.data.augment  # crop + flip on the device
    root = make_cifar10(tmp_path / "data", n_train=100, n_test=8)
    cfg = without_hydra(
        compose_cfg(
            [
                "experiment=cifar10_fast",
                f"data.root={root}",
                "data.batch_size=4",
                "data.eval_batch_size=4",
                "trainer.precision=32-true",  # bf16 is emulated on CPUs without AVX-512 BF16
                "model.compile=false",  # compiling a ResNet-18 takes minutes on a CPU
                "model.net.depth=18",
                "logger=none",
                "debug=fast_dev_run",
            ],
            tmp_path / "run",
        )
    )
    metrics, _ = train(cfg)
    assert metrics["status"] == "completed" and "test/acc" in metrics


# ----------------------------------------------------------------------------- the plain loop
def test_plain_loop_trains_probes_and_stops_at_the_target(tmp_path):
    from bench.plain_loop import PlainLoop, Splits, crop_flip_per_sample

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = (
        labels.view(-1, 1, 1, 1) * 200 + torch.randint(0, 40, (64, 3, 8, 8), generator=generator)
    ).byte()
    splits = Splits(images, labels, images[:16], labels[:16], images[:16], labels[:16])
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 2))
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    augment = crop_flip_per_sample(8, 1)
    assert augment(images[:4]).shape == (4, 3, 8, 8)
    loop = PlainLoop(net, optimizer, splits, batch_size=16, augment=augment, channels_last=True)
    result = loop.fit(epochs=5, checkpoint=tmp_path / "best.pt", probe_every=2, stop_at=1.0)
    assert (tmp_path / "best.pt").is_file() and result.test_acc == 1.0
    hit = first_reaching(result.probes, 1.0)
    assert hit is not None and hit == result.probes[-1]  # stopped at the first probe that reached it
    assert 0.0 < result.wait_fraction < 1.0 and len(result.epochs) <= 5


# ----------------------------------------------------------------------------- the suite
def test_reports_are_results_json_and_md_only_and_leave_the_readme_alone(tmp_path):
    readme = (ROOT / "README.md").read_bytes()
    row = make_row("case", "setting", "cpu", "s", 2.0, 4.0, "note")
    write_reports({"cases": {"case": {"rows": [row], "seconds": 1.0}}}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]
    assert (ROOT / "README.md").read_bytes() == readme
    assert "bench:start" not in (ROOT / "bench" / "report.py").read_text()


def test_rows_and_markdown():
    row = make_row("case", "setting", "cpu", "s", 2.0, 4.0, "note")
    assert row["ratio"] == 0.5 and make_row("c", "s", "d", "m", None, 4.0)["ratio"] is None
    text = markdown_table({"cases": {"case": {"rows": [row], "seconds": 1.0, "quick": True}}})
    assert "| case (quick) | setting | cpu | s | 2 | 4 | 0.5 | note |" in text


def test_every_registered_case_is_a_module_with_run():
    import importlib

    assert set(CASES) >= EXTRA_CASES
    for module in CASES.values():
        assert callable(importlib.import_module(f"bench.{module}").run)


def test_bench_command_writes_results_and_reports_a_failing_case(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--case", "cifar10_fast", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    entry = results["cases"]["cifar10_fast"]
    assert entry["quick"] is True and isinstance(entry["seconds"], float)
    for row in entry["rows"]:
        assert set(row) == {"case", "setting", "device", "metric", "value", "baseline", "ratio", "note"}
    assert results["suite"]["cases"] == ["cifar10_fast"] and results["suite"]["quick"] is True
    assert "cifar10_fast (quick)" in (out / "results.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md"]

    # in-process: a case that raises gets an error row, the others still run, the exit status is 1
    from bench import __main__ as runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the GPU path only reports "not run"
    monkeypatch.setitem(runner.CASES, "broken", "no_such_module")
    assert runner.main(["--quick", "--case", "cifar10_fast", "--out", str(out)]) == 0
    monkeypatch.setattr(runner, "selected_cases", lambda names, run_all: ["broken", "cifar10_fast"])
    assert runner.main(["--quick", "--out", str(out)]) == 1
    results = json.loads((out / "results.json").read_text())
    assert results["cases"]["broken"]["rows"][0]["metric"] == "error"
    assert "cifar10_fast" in results["cases"]


# ----------------------------------------------------------------------------- the NaN guard without syncs
class PoisonAt(__import__("lightning").Callback):
    """Makes the net's weights NaN before training step ``at_step``."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))


@pytest.mark.parametrize(
    ("every", "poison", "found"),
    [
        (3, 4, 5),  # step 4 goes bad unnoticed, the check before step 5 (steps 2, 5, 8...) stops the run
        (100, 5, 8),  # no periodic check before the epoch's checkpoint: it checks first, and writes nothing
    ],
)
def test_nan_guard_checking_every_few_steps_names_the_step_and_writes_no_later_checkpoint(
    tmp_path, every, poison, found
):
    """The GPU mode of FiniteLossGuard (flag kept on the device, read every N steps and before every
    checkpoint), forced here on the CPU."""
    from lit_vision.callbacks.safety import NonFiniteLossError
    from lit_vision.runs.run import train

    cfg = without_hydra(
        compose_cfg(
            [
                "trainer.max_epochs=3",
                "trainer.limit_train_batches=4",
                "trainer.limit_val_batches=1",
                "trainer.num_sanity_val_steps=0",
                "trainer.enable_model_summary=false",
                "callbacks=[model_checkpoint]",
                "logger=none",
            ],
            tmp_path,
        )
    )
    with open_dict(cfg):
        guard = {"_target_": "lit_vision.callbacks.safety.FiniteLossGuard", "check_every_n_steps": every}
        cfg.callbacks.guard = guard
        cfg.callbacks.poison = {"_target_": f"{__name__}.PoisonAt", "at_step": poison}
    with pytest.raises(NonFiniteLossError, match=rf"global step {poison} .*found at global step {found}\)"):
        train(cfg)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 4  # end of epoch 0, before the divergence
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values() if t.is_floating_point())
