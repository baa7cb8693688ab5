"""Run-level reliability: clear errors without tracebacks, typed Trainer config, run folders never reused,
non-finite losses stopped with the last good checkpoint kept, and atomic checkpoint writes."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import open_dict, read_write

from lit_vision.callbacks.safety import NonFiniteLossError
from lit_vision.config.schema import TrainerConfig, trainer_fields_from_lightning
from lit_vision.runs.hydra_callbacks import RunDirGuard
from lit_vision.runs.run import train
from lit_vision.runs.run_folder import argv_with_run_overrides, next_free_dir, run_dir_of_checkpoint
from tests.helpers import ROOT, TRAIN_PY, compose_cfg, run_train_py, without_hydra

TINY = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "callbacks=[model_checkpoint]",
    "logger=none",
]


def flat(text: str) -> str:
    """Messages are wrapped to the terminal width: compare them with single spaces."""
    return " ".join(text.split())


# ------------------------------------------------------------------ what the user sees
def test_user_error_is_one_paragraph_without_traceback(tmp_path):
    proc = run_train_py(["ckpt_path=no/such/file.ckpt", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == 2
    assert "Error: ckpt_path=no/such/file.ckpt: no such checkpoint file" in flat(proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    # the run folder keeps a record of the failure
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "no such checkpoint" in metrics["error"]
    assert "no such checkpoint" in (tmp_path / "run" / "train.log").read_text()


def test_hydra_full_error_shows_the_traceback(tmp_path):
    proc = run_train_py(["train=false", f"hydra.run.dir={tmp_path}"], env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "UserError" in proc.stderr and "ckpt_path=" in proc.stderr


@pytest.mark.parametrize(
    ("override", "message", "exit_code"),
    [
        ("trainer.max_epochs=abc", "Value 'abc' of type 'str' could not be converted to Integer", 1),
        # a mistyped key is caught before Hydra composes, with the near-miss name (a UserError: exit 2)
        ("trainer.max_epoch=3", "Did you mean trainer.max_epochs?", 2),
        ("trainer.precision=[1,2]", "trainer.precision", 1),
    ],
)
def test_bad_override_gives_hydras_message_without_traceback(override, message, exit_code, tmp_path):
    proc = run_train_py([override, f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode == exit_code
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run").exists()  # rejected before anything is written


def test_trainer_schema_matches_the_installed_lightning():
    hints = typing.get_type_hints(TrainerConfig)
    declared = {
        f.name: (hints[f.name], f.default) for f in dataclasses.fields(TrainerConfig) if f.name != "_target_"
    }
    assert declared == trainer_fields_from_lightning()


def test_every_trainer_option_and_precision_composes():
    for option in ("default", "cpu", "gpu", "ddp", "ddp_cpu"):
        cfg = compose_cfg([f"trainer={option}"])
        assert cfg.trainer._target_ == "lightning.pytorch.Trainer"
    for precision in ("32", "32-true", "16-mixed", "bf16-mixed", "bf16-true"):
        cfg = compose_cfg([f"trainer.precision={precision}"])
        assert str(cfg.trainer.precision) == precision
    ddp = compose_cfg(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]).trainer
    assert (ddp.strategy, ddp.devices, ddp.num_nodes, ddp.sync_batchnorm) == ("ddp", 4, 2, True)


def test_slurm_launcher_follows_the_trainer():
    cfg = compose_cfg(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)


# ------------------------------------------------------------------ run folders
def _fake_run(folder: Path) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("- optim=sgd\n- optim.lr=0.05\n- ckpt_path=x.ckpt\n")
    (folder / "config.yaml").write_text("previous: run\n")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"checkpoint")
    return folder


def test_explicit_run_dir_holding_a_run_is_refused(tmp_path):
    run = _fake_run(tmp_path / "old")
    proc = run_train_py(["debug=fast_dev_run", f"hydra.run.dir={run}"])
    assert proc.returncode == 2
    assert "already holds a run" in flat(proc.stderr)
    assert f"ckpt_path={run}/checkpoints/last.ckpt" in flat(proc.stderr)
    assert "Traceback" not in proc.stderr
    assert (run / "config.yaml").read_text() == "previous: run\n"
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "checkpoints", "config.yaml"]


def test_automatic_run_dir_gets_a_suffix_and_resume_goes_back_to_its_run(tmp_path):
    used = _fake_run(tmp_path / "12-00-00.000")
    cfg = compose_cfg([])
    with read_write(cfg.hydra):
        cfg.hydra.run.dir = str(used)
    RunDirGuard()._choose_run_dir(cfg)
    assert cfg.hydra.run.dir == str(tmp_path / "12-00-00.000_1")
    assert next_free_dir(used) == tmp_path / "12-00-00.000_1"

    resumed = compose_cfg([f"ckpt_path={used}/checkpoints/last.ckpt"])
    RunDirGuard()._choose_run_dir(resumed)
    assert resumed.hydra.run.dir == str(used)
    assert resumed.hydra.output_subdir.startswith(".hydra/resume-")  # the first session's record stays
    elsewhere = compose_cfg([f"ckpt_path={used}/checkpoints/last.ckpt", "resume_in_run_dir=false"])
    before = str(elsewhere.hydra.run.dir)
    RunDirGuard()._choose_run_dir(elsewhere)
    assert elsewhere.hydra.run.dir != str(used) and str(elsewhere.hydra.run.dir) == before


def test_resuming_reuses_the_runs_overrides_before_the_users(tmp_path):
    run = _fake_run(tmp_path / "run")
    ckpt = run / "checkpoints" / "last.ckpt"
    assert run_dir_of_checkpoint(ckpt) == run
    argv = argv_with_run_overrides(["train.py", f"ckpt_path={ckpt}", "optim.lr=0.01"])
    assert argv == ["train.py", "optim=sgd", "optim.lr=0.05", f"ckpt_path={ckpt}", "optim.lr=0.01"]
    assert argv_with_run_overrides(["train.py", "-m", f"ckpt_path={ckpt}"]) == [
        "train.py",
        "-m",
        f"ckpt_path={ckpt}",
    ]
    assert argv_with_run_overrides(["train.py", "ckpt_path=elsewhere.ckpt"]) == [
        "train.py",
        "ckpt_path=elsewhere.ckpt",
    ]
    # best checkpoints are named like epoch003-val_acc=0.9554.ckpt: quoted so Hydra's parser accepts them
    named = argv_with_run_overrides(["train.py", "ckpt_path=/x/epoch003-val_acc=0.9554.ckpt"])
    assert named == ["train.py", "ckpt_path='/x/epoch003-val_acc=0.9554.ckpt'"]


# ------------------------------------------------------------------ non-finite loss
class PoisonWeights(L.Callback):
    """Makes the net's weights NaN before training step ``at_step`` (a diverging run)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.net.parameters()).fill_(float("nan"))


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = without_hydra(compose_cfg(TINY, output_dir=tmp_path))
    with open_dict(cfg):
        cfg.callbacks.poison = {"_target_": f"{__name__}.PoisonWeights", "at_step": 6}
    with pytest.raises(NonFiniteLossError, match=r"NaN at epoch 1, global step 6 \(batch 3 of the epoch\)"):
        train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "global step 6" in metrics["error"]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 4  # written at the end of epoch 0, before the divergence
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values() if t.is_floating_point())


# ------------------------------------------------------------------ atomic checkpoint writes
def test_killing_a_run_while_it_writes_a_checkpoint_leaves_the_previous_one_loadable(tmp_path):
    """A net with a 40 MB checkpoint, killed (SIGKILL) while a checkpoint is being written."""
    run = tmp_path / "run"
    args = [
        "model.net.channels=[64,2048]",
        "data.batch_size=8",
        "trainer.max_epochs=200",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_model_summary=false",
        "callbacks=[model_checkpoint]",
        "logger=none",
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    for _attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(TRAIN_PY), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        killed_mid_write = False
        try:
            deadline = time.monotonic() + 240
            ckpt_dir = run / "checkpoints"
            while time.monotonic() < deadline and proc.poll() is None:
                if (ckpt_dir / "last.ckpt").is_file() and any(p.suffix == ".tmp" for p in ckpt_dir.iterdir()):
                    proc.send_signal(signal.SIGKILL)
                    killed_mid_write = True
                    break
                time.sleep(0.002)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert killed_mid_write, proc.stderr.read().decode()[-3000:]
        leftovers = [p for p in (run / "checkpoints").iterdir() if p.suffix == ".tmp"]
        if leftovers:  # the kill landed inside a write (not between the check and the signal)
            break
        import shutil

        shutil.rmtree(run)
    assert leftovers, "the kill never landed inside a checkpoint write"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] >= 1 and "state_dict" in checkpoint
    assert sum(t.numel() for t in checkpoint["state_dict"].values()) > 3_000_000


# ------------------------------------------------------------------ Trainer switches and empty training
@pytest.mark.parametrize("key", ["max_epochs", "max_steps", "limit_train_batches"])
def test_a_run_that_would_train_nothing_is_refused(key, tmp_path):
    from lit_vision.errors import UserError

    cfg = without_hydra(compose_cfg([*TINY, f"trainer.{key}=0"], output_dir=tmp_path))
    with pytest.raises(
        UserError, match=rf"trainer.{key}=0 trains nothing, and the run would then test untrained"
    ):
        train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "trains nothing" in metrics["error"]
    assert not (tmp_path / "checkpoints").exists()


def test_trainer_switches_turn_their_callbacks_off(tmp_path):
    """enable_progress_bar=false / enable_checkpointing=false with the progress bar and checkpoint callbacks
    configured (the defaults): Lightning would refuse both combinations; here those callbacks are left out."""
    base = [o for o in TINY if not o.startswith("callbacks=")]
    quiet = [*base, "callbacks=[model_checkpoint,progress_bar]", "trainer.enable_progress_bar=false"]
    metrics, _ = train(without_hydra(compose_cfg(quiet, output_dir=tmp_path / "quiet")))
    assert metrics["status"] == "completed" and metrics["global_step"] == 8
    assert metrics["best_model_path"]  # the checkpoint callback stays

    unsaved = [*base, "callbacks=[model_checkpoint,progress_bar]", "trainer.enable_checkpointing=false"]
    metrics, _ = train(without_hydra(compose_cfg(unsaved, output_dir=tmp_path / "unsaved")))
    assert metrics["status"] == "completed" and metrics["tested_weights"] == "last"
    assert not (tmp_path / "unsaved" / "checkpoints").exists()


# ------------------------------------------------------------------ disk full
def _disk_fills_after(monkeypatch, writes: int, error: BaseException) -> None:
    """The checkpoint writer succeeds ``writes`` times, then fails with ``error`` (a full disk)."""
    from lit_vision.utils import checkpoint_io

    calls = {"n": 0}
    real = checkpoint_io.write_bytes

    def write_bytes(handle, data):
        calls["n"] += 1
        if calls["n"] > writes:
            handle.write(bytes(data)[:100])  # a partial file, as a full disk leaves it
            raise error
        real(handle, data)

    monkeypatch.setattr(checkpoint_io, "write_bytes", write_bytes)


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4224 vs 4112"),
    ],
    ids=["ENOSPC", "torch-writer"],
)
def test_a_full_disk_names_the_file_and_keeps_what_was_written(error, tmp_path, monkeypatch):
    from lit_vision.utils import checkpoint_io
    from lit_vision.utils.checkpoint_io import DiskFullError

    if isinstance(error, RuntimeError):  # torch's message has no errno: the free space tells
        usage = checkpoint_io.shutil.disk_usage(tmp_path)
        monkeypatch.setattr(checkpoint_io.shutil, "disk_usage", lambda _: usage._replace(free=4096))
    _disk_fills_after(monkeypatch, writes=2, error=error)  # epoch 0's best and last checkpoints fit
    with pytest.raises(DiskFullError) as full:
        train(without_hydra(compose_cfg(TINY, output_dir=tmp_path)))
    message = flat(str(full.value))
    assert message.startswith(f"No space left on device while writing the checkpoint {tmp_path}/checkpoints/")
    assert "Nothing written before was lost" in message
    checkpoints = tmp_path / "checkpoints"
    assert not [p for p in checkpoints.iterdir() if p.suffix == ".tmp"]  # the partial file is gone
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4  # epoch 0's checkpoint, intact
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["error"].startswith("No space left on device")


def test_a_full_disk_is_one_paragraph_without_traceback(tmp_path, monkeypatch, capsys):
    from lit_vision.runs.run import run_task

    _disk_fills_after(monkeypatch, writes=0, error=OSError(28, "No space left on device"))
    with pytest.raises(SystemExit) as stopped:
        run_task(without_hydra(compose_cfg(TINY, output_dir=tmp_path)))
    assert stopped.value.code == 2
    err = flat(capsys.readouterr().err)
    # Lightning's own one-line notices ("Using bfloat16 ...") may come first: the paragraph is what counts
    assert "Error: No space left on device while writing the checkpoint" in err and "Traceback" not in err


def test_a_full_disk_on_any_other_write_is_the_same_paragraph(tmp_path, monkeypatch, capsys):
    """metrics.json at the end of the run (any file but a checkpoint): the paragraph names that file."""
    from lit_vision.runs import run

    def full(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(run, "write_json", full)
    with pytest.raises(SystemExit) as stopped:
        run.run_task(without_hydra(compose_cfg(TINY, output_dir=tmp_path)))
    assert stopped.value.code == 2
    err = flat(capsys.readouterr().err)
    assert f"Error: No space left on device while writing into {tmp_path}/metrics.json" in err
    assert "Traceback" not in err
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # what the run wrote before stays


def test_lightnings_console_handler_follows_the_current_stderr(monkeypatch, capsys):
    """A handler made while stderr was a temporary stream still writes after that stream is closed."""
    import io
    import logging

    from lit_vision.utils.reporting import CurrentStderrHandler

    temporary = io.StringIO()
    monkeypatch.setattr(sys, "stderr", temporary)
    handler = CurrentStderrHandler()
    monkeypatch.undo()
    temporary.close()
    logger = logging.getLogger("lit_vision.test_console_handler")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("still printed")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "still printed" in err and "Logging error" not in err
