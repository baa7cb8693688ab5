"""Precision, memory layout, torch.compile and multi-process DDP on CPU, through the normal config path."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch
from omegaconf import open_dict

from lit_vision.runs.run import train
from tests.helpers import compose_cfg, run_train_py, without_hydra

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "callbacks=[model_checkpoint]",
    "logger=none",
]


class NetProbe(L.Callback):
    """Records what the net sees and holds during training (dtypes, memory layout, compilation)."""

    seen: dict = {}

    def on_train_start(self, trainer, pl_module):
        NetProbe.seen = {
            "precision": trainer.precision,
            "weight_dtype": next(pl_module.net.parameters()).dtype,
            "compiled": getattr(pl_module.net, "_compiled_call_impl", None) is not None,
            "conv_channels_last": pl_module.net.features[0].weight.is_contiguous(
                memory_format=torch.channels_last
            ),
        }

        def record(module, inputs, output):
            NetProbe.seen["output_dtype"] = output.dtype

        pl_module.net.register_forward_hook(record)


def run_with_probe(tmp_path, *overrides: str) -> dict:
    cfg = without_hydra(compose_cfg([*TINY, *overrides], output_dir=tmp_path))
    with open_dict(cfg):
        cfg.callbacks.probe = {"_target_": f"{__name__}.NetProbe"}
    metrics, _ = train(cfg)
    assert metrics["status"] == "completed"
    assert math.isfinite(metrics["test/loss"]) and 0 <= metrics["test/acc"] <= 1
    return dict(NetProbe.seen)


def test_bf16_mixed_precision_runs_on_cpu(tmp_path):
    seen = run_with_probe(tmp_path, "trainer.accelerator=cpu", "trainer.precision=bf16-mixed")
    assert seen["precision"] == "bf16-mixed"
    assert seen["weight_dtype"] == torch.float32 and seen["output_dtype"] == torch.bfloat16  # autocast


def test_bf16_true_precision_runs_on_cpu(tmp_path):
    seen = run_with_probe(tmp_path, "trainer.accelerator=cpu", "trainer.precision=bf16-true")
    assert seen["weight_dtype"] == torch.bfloat16 and seen["output_dtype"] == torch.bfloat16


def test_channels_last_option(tmp_path):
    seen = run_with_probe(tmp_path, "model.channels_last=true")
    assert seen["conv_channels_last"] and not seen["compiled"]


@pytest.mark.slow
def test_compile_option_compiles_the_net_and_trains(tmp_path):
    seen = run_with_probe(tmp_path, "model.compile=true", "model.channels_last=true")
    assert seen["compiled"] and seen["conv_channels_last"]
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any("_orig_mod" in k for k in checkpoint["state_dict"])  # loads without compile too


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(tmp_path):
    args = ["trainer.max_epochs=2", "trainer.limit_val_batches=3", "trainer.limit_test_batches=3"]
    single = run_train_py([*args, f"hydra.run.dir={tmp_path / 'single'}"])
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_train_py([*args, "trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'ddp'}"])
    assert ddp.returncode == 0, ddp.stdout[-2000:] + ddp.stderr[-3000:]
    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    two = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert set(one) == set(two)
    assert two["status"] == "completed" and math.isfinite(two["val/loss"])
    # each of the 2 processes trains on its own half of every epoch (1257 images, batches of 64):
    # 20 steps per epoch in one process, 10 in each of two
    assert (one["global_step"], two["global_step"]) == (40, 20)
    # written once, by rank 0: one best checkpoint + last.ckpt; the second process only logs
    assert len(list((tmp_path / "ddp" / "checkpoints").glob("epoch*.ckpt"))) == 1
    assert (tmp_path / "ddp" / "train_ddp_process_1.log").is_file()
    assert "Outputs:" not in (tmp_path / "ddp" / "train_ddp_process_1.log").read_text()


@pytest.mark.slow
def test_ddp_inside_a_local_sweep_starts_the_processes_of_each_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_train_py(["-m", "trainer=ddp_cpu", "seed=1,2", *TINY, f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.count("Launching 2 jobs locally") == 1  # the extra process did not restart the sweep
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["global_step"] == 3  # limit_train_batches=3
        assert (sweep / job / "train_ddp_process_1.log").is_file()


# ------------------------------------------------------------------ forcing what `auto` precision resolves to
@pytest.mark.parametrize("forced", ["bf16-mixed", "32-true"])
def test_the_environment_forces_the_auto_precision(forced, monkeypatch):
    from lit_vision.utils.hardware import auto_precision

    monkeypatch.setenv("LIT_VISION_AUTO_PRECISION", forced)
    assert auto_precision("cpu") == auto_precision("auto") == forced
    assert compose_cfg([]).trainer.precision == forced
    assert compose_cfg(["trainer.precision=16-mixed"]).trainer.precision == "16-mixed"  # explicit wins
    monkeypatch.setenv("LIT_VISION_AUTO_PRECISION", "detect")
    assert auto_precision("cpu") in ("bf16-mixed", "32-true")


def test_a_bad_forced_precision_names_the_variable(monkeypatch):
    from lit_vision.errors import UserError
    from lit_vision.utils.hardware import auto_precision

    monkeypatch.setenv("LIT_VISION_AUTO_PRECISION", "fp8")
    with pytest.raises(UserError, match=r"LIT_VISION_AUTO_PRECISION='fp8' is not one of bf16-mixed, 32-true"):
        auto_precision("cpu")


def test_the_auto_precision_fixture_reaches_the_run(auto_precision, tmp_path):
    """What every test using the fixture relies on: the run trains under the forced resolution."""
    seen = run_with_probe(tmp_path, "trainer.accelerator=cpu")
    assert seen["precision"] == auto_precision
    assert seen["output_dtype"] == (torch.bfloat16 if auto_precision == "bf16-mixed" else torch.float32)


# ------------------------------------------------------------------ devices against what the machine has
def test_more_cpu_devices_than_cores_is_refused_before_any_process_starts(tmp_path, monkeypatch):
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    from lit_vision.errors import UserError
    from lit_vision.utils.hardware import usable_cpu_count

    def no_fork(*args, **kwargs):
        raise AssertionError("a training process was started")

    monkeypatch.setattr(_SubprocessScriptLauncher, "launch", no_fork)
    cores = usable_cpu_count()
    for trainer in ("trainer=cpu", "trainer=ddp_cpu"):
        cfg = without_hydra(
            compose_cfg([*TINY, trainer, f"trainer.devices={cores + 97}"], output_dir=tmp_path)
        )
        with pytest.raises(UserError) as refused:
            train(cfg)
        message = str(refused.value)
        assert f"trainer.devices={cores + 97} asks for {cores + 97} CPU processes" in message
        assert f"this machine has {cores} CPU core(s)" in message
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"
    assert not (tmp_path / "checkpoints").exists()


def test_devices_within_the_machine_pass_and_gpus_are_counted(monkeypatch):
    from lit_vision.errors import UserError
    from lit_vision.utils.hardware import check_devices, usable_cpu_count

    for ok in ("auto", -1, "-1", 1, "1", usable_cpu_count()):
        check_devices("cpu", ok)
    with pytest.raises(UserError, match=r"trainer.devices=0: at least one device"):
        check_devices("cpu", 0)
    with pytest.raises(UserError, match=r"trainer.devices='two' is not a device count"):
        check_devices("cpu", "two")

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_devices("gpu", 2)
    check_devices("gpu", [0, 1])
    check_devices("gpu", "0,1")
    with pytest.raises(
        UserError, match=r"trainer.devices=4 asks for 4 GPUs, but 2 CUDA GPU\(s\) are visible"
    ):
        check_devices("gpu", 4)
    with pytest.raises(UserError, match=r"asks for GPU indices \[1, 2\], but 2 CUDA GPU\(s\)"):
        check_devices("gpu", [1, 2])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(UserError, match=r"asks for GPUs, but no CUDA GPU is visible"):
        check_devices("gpu", 1)


def test_too_many_devices_is_one_paragraph_from_train_py(tmp_path):
    proc = run_train_py(["trainer=cpu", "trainer.devices=99", "logger=none", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 2
    assert "Error: trainer.devices=99 asks for 99 CPU processes" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr + proc.stdout
