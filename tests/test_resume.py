"""Resuming and evaluating: a run stopped mid-epoch by SIGTERM or Ctrl-C (SIGINT) resumes to the same final
metrics as an uninterrupted run; data loaders resume their position; checkpoints evaluate on their own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import OmegaConf, open_dict

from lit_vision.data.digits import DigitsDataModule
from lit_vision.data.resumable import EpochSampler
from lit_vision.runs.run import RunInterrupted, train
from tests.helpers import ROOT, TRAIN_PY, compose_cfg, run_train_py, without_hydra

# Values that legitimately differ between two runs of the same experiment.
VOLATILE = {"fit_seconds", "test_seconds", "output_dir", "best_model_path", "tested_weights"}

TINY = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_model_summary=false",
    "callbacks=[model_checkpoint]",
    "logger=none",
]


def comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


# ------------------------------------------------------------------ data position
def labels_of(loader) -> list[list[int]]:
    return [labels.tolist() for _, labels in loader]


def test_loader_resumes_its_position_within_the_same_epoch_only():
    dm = DigitsDataModule(batch_size=64, split_seed=3)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(2)
    full = labels_of(loader)
    assert loader.state_dict() == {"epoch": 2, "batches": len(full)}

    resumed = dm.train_dataloader()
    resumed.load_state_dict({"epoch": 2, "batches": 5})
    resumed.sampler.set_epoch(2)
    assert len(resumed) == len(full)  # Lightning sizes the epoch; only the first pass skips
    assert labels_of(resumed) == full[5:]
    assert labels_of(resumed) == full  # the next pass is a whole epoch again

    next_epoch = dm.train_dataloader()
    next_epoch.load_state_dict({"epoch": 2, "batches": len(full)})  # saved at the end of epoch 2
    next_epoch.sampler.set_epoch(3)
    assert len(labels_of(next_epoch)) == len(full)


def test_each_ddp_rank_gets_its_own_shard_of_the_epoch():
    sampler = EpochSampler(101, shuffle=True, seed=7)
    shards = []
    for rank in range(2):
        wrapped = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=True, seed=0)
        wrapped.set_epoch(4)
        shards.append(list(wrapped))
    assert sampler.epoch == 4  # the epoch reaches the inner sampler
    assert len(shards[0]) == len(shards[1]) == 51  # padded to equal length
    assert set(shards[0]) | set(shards[1]) == set(range(101))
    assert len(set(shards[0]) & set(shards[1])) <= 1  # only the padding repeats


# ------------------------------------------------------------------ evaluate only
@pytest.mark.usefixtures("auto_precision")  # compares numbers of two runs
def test_train_false_evaluates_a_checkpoint_and_rebuilds_the_task_from_it(tmp_path):
    run = tmp_path / "run"
    metrics, _ = train(without_hydra(compose_cfg([*TINY, "model.net.channels=[8,16]"], output_dir=run)))
    best = metrics["best_model_path"]
    checkpoint = torch.load(best, weights_only=False)
    assert checkpoint["task_class"] == "lit_vision.tasks.classification.ClassificationTask"

    # The default model config (channels [16, 32]) is not used: the checkpoint says what it holds.
    evaluated, _ = train(
        without_hydra(
            compose_cfg(["train=false", f"ckpt_path='{best}'", "logger=none"], output_dir=tmp_path / "eval")
        )
    )
    assert evaluated["status"] == "completed"
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["test/acc"] == evaluated["test/acc"]


def test_resuming_with_another_model_names_the_mismatching_weights(tmp_path):
    from lit_vision.errors import UserError

    metrics, _ = train(without_hydra(compose_cfg(TINY, output_dir=tmp_path / "run")))
    cfg = compose_cfg(
        [*TINY, "model.net.channels=[8,16]", f"ckpt_path='{metrics['best_model_path']}'"],
        output_dir=tmp_path / "b",
    )
    with pytest.raises(
        UserError, match=r"net\.features\.0\.weight \(16, 1, 5, 5\) in the checkpoint vs \(8, 1, 5, 5\)"
    ):
        train(without_hydra(cfg))


@pytest.mark.slow
def test_evaluate_module_uses_the_runs_own_data_options(tmp_path):
    run = tmp_path / "run"
    proc = run_train_py([*TINY, "data.val_fraction=0.3", f"hydra.run.dir={run}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lit_vision.cli.evaluate",
            f"ckpt={trained['best_model_path']}",
            f"hydra.run.dir={tmp_path / 'ev'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    overrides = OmegaConf.load(tmp_path / "ev" / ".hydra" / "overrides.yaml")
    assert "data.val_fraction=0.3" in overrides and overrides[-1] == "train=false"


# ------------------------------------------------------------------ reproducibility
@pytest.mark.usefixtures("auto_precision")  # compares numbers of two runs
def test_two_deterministic_runs_give_identical_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = compose_cfg([*TINY, "seed=7", "trainer.deterministic=true"], output_dir=tmp_path / name)
        runs.append(comparable(train(without_hydra(cfg))[0]))
    assert runs[0] == runs[1]
    assert runs[0]["global_step"] == 8 and 0 < runs[0]["test/acc"] <= 1
    other = compose_cfg([*TINY, "seed=8", "trainer.deterministic=true"], output_dir=tmp_path / "c")
    assert comparable(train(without_hydra(other))[0]) != runs[0]  # the seed matters


def test_last_ckpt_replaces_a_last_ckpt_it_did_not_write(tmp_path):
    """A resume after an interruption in the first epoch: last.ckpt exists (the interrupt wrote it) while the
    last-checkpoint callback has written nothing yet. It must replace that file, not write last-v1.ckpt."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "last.ckpt").write_bytes(b"written by someone else")
    train(without_hydra(compose_cfg(TINY, output_dir=tmp_path)))
    assert not list(checkpoints.glob("last-v*.ckpt"))
    assert torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)["epoch"] == 1


# ------------------------------------------------------------------ Ctrl-C: the mechanism, in process
class SigintAt(L.Callback):
    """Sends this process ``times`` SIGINTs at the start of the training batch of global step ``at_step``,
    i.e. halfway through a batch (started, not completed), where a real Ctrl-C usually lands."""

    def __init__(self, at_step: int, times: int = 1) -> None:
        self.at_step = at_step
        self.times = times

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


def _with_sigint(cfg, at_step: int, times: int = 1):
    with open_dict(cfg):
        cfg.callbacks.sigint = {"_target_": f"{__name__}.SigintAt", "at_step": at_step, "times": times}
    return cfg


EXACT = [*TINY, "seed=7", "trainer.deterministic=true"]


def _train_epoch_aggregates(metrics: dict) -> set[str]:
    return {k for k in metrics if k.startswith("train/") and k != "train/loss_step"}


@pytest.mark.usefixtures("auto_precision")  # compares numbers of two runs
@pytest.mark.parametrize(("at_step", "saved_step"), [(2, 3), (6, 7)], ids=["first-epoch", "last-epoch"])
def test_ctrl_c_then_resume_gives_the_uninterrupted_metrics(at_step, saved_step, tmp_path):
    expected = comparable(train(without_hydra(compose_cfg(EXACT, output_dir=tmp_path / "reference")))[0])
    assert expected["global_step"] == 8

    run = tmp_path / "run"
    with pytest.raises(RunInterrupted) as stopped:
        train(_with_sigint(without_hydra(compose_cfg(EXACT, output_dir=run)), at_step=at_step))
    assert (stopped.value.signal_name, stopped.value.exit_code) == ("SIGINT", 130)
    assert "Resume with:" in str(stopped.value)
    partial = json.loads((run / "metrics.json").read_text())
    assert (partial["status"], partial["error"]) == ("interrupted", "interrupted by SIGINT")
    # stopped at the batch boundary: the batch in flight was finished, none is half done
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    progress = state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]
    assert state["global_step"] == saved_step and progress["ready"] == progress["completed"] == saved_step

    resume = compose_cfg([*EXACT, f"ckpt_path='{run / 'checkpoints' / 'last.ckpt'}'"], output_dir=run)
    final = comparable(train(without_hydra(resume))[0])
    assert final["status"] == "completed" and final["global_step"] == 8
    # every final metric, the interrupted epoch's training averages included (the checkpoint carries the
    # epoch's running loss and metrics)
    assert _train_epoch_aggregates(expected) and final == expected


def test_a_second_ctrl_c_stops_at_once_and_saves_nothing(tmp_path):
    with pytest.raises(RunInterrupted) as stopped:
        train(_with_sigint(without_hydra(compose_cfg(EXACT, output_dir=tmp_path)), at_step=2, times=2))
    assert stopped.value.exit_code == 130
    assert "second Ctrl-C" in str(stopped.value) and "not saved" in str(stopped.value)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()  # a half-done batch is never saved


def test_the_graceful_ctrl_c_is_installed_only_where_it_is_safe(tmp_path):
    """One process: installed (and Lightning's teardown puts the previous handler back). Under DDP, or where
    Ctrl-C is ignored (a background job), the handler is left alone."""
    from types import SimpleNamespace

    from lit_vision.callbacks.safety import InterruptCheckpoint

    previous = signal.getsignal(signal.SIGINT)
    try:
        for world_size, start, installed in (
            (1, previous, True),
            (2, previous, False),
            (1, signal.SIG_IGN, False),
        ):
            signal.signal(signal.SIGINT, start)
            callback = InterruptCheckpoint(tmp_path)
            callback.on_train_start(SimpleNamespace(world_size=world_size), None)
            now = signal.getsignal(signal.SIGINT)
            assert (getattr(now, "__self__", None) is callback) is installed, (world_size, start)
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------ SIGTERM / Ctrl-C and resume, end to end
RESUME_RUN = [
    "trainer.max_epochs=3",
    "data.batch_size=8",
    "seed=3",
    "trainer.deterministic=true",
    "trainer.enable_model_summary=false",
    "callbacks=[model_checkpoint]",
    "logger=none",
]


def _signal_during_second_epoch(run: Path, signum: int, delay: float) -> subprocess.CompletedProcess:
    """Run RESUME_RUN and send ``signum`` ``delay`` seconds after the first epoch's checkpoint appears."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_PY), *RESUME_RUN, f"hydra.run.dir={run}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a job started in the background inherits Ctrl-C ignored; the run must see it as a terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if list((run / "checkpoints").glob("epoch000*.ckpt")):
            time.sleep(delay)  # well inside epoch 1
            proc.send_signal(signum)
            break
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_signal_mid_epoch_then_resume_reaches_the_uninterrupted_metrics(signum, exit_code, tmp_path):
    reference = run_train_py([*RESUME_RUN, f"hydra.run.dir={tmp_path / 'reference'}"])
    assert reference.returncode == 0, reference.stderr[-3000:]
    reference_metrics = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    expected = comparable(reference_metrics)
    steps_per_epoch = expected["global_step"] // 3
    # about 40 % into the second epoch, from the reference run's own epoch time (an epoch takes 0.4 s on a
    # fast CPU with native bf16 and several seconds on a loaded one)
    delay = 0.4 * float(reference_metrics["fit_seconds"]) / 3

    run = tmp_path / "run"
    # The signal is timed by the clock: on a loaded machine it can miss the second epoch (land on an epoch
    # boundary, in the third epoch, or after the end); such attempts are repeated.
    for _attempt in range(4):
        killed = _signal_during_second_epoch(run, signum, delay)
        metrics_file = run / "metrics.json"
        partial = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        in_second_epoch = partial.get("epochs") == 1 and partial.get("global_step", 0) % steps_per_epoch
        if killed.returncode == exit_code and in_second_epoch:
            break
        shutil.rmtree(run)
    else:
        pytest.fail(
            f"no attempt was stopped inside the second epoch; last exit {killed.returncode}, "
            f"metrics {partial}, output: {killed.stdout[-2000:]}"
        )
    assert partial["status"] == "interrupted" and partial["epochs"] == 1
    assert partial["global_step"] % steps_per_epoch != 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    command = f"python train.py ckpt_path={run / 'checkpoints' / 'last.ckpt'}"
    assert command in " ".join(killed.stdout.split())

    # `python train.py ckpt_path=...` alone: the run's overrides come from its folder.
    resumed = run_train_py([f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads((run / "metrics.json").read_text())  # the same folder
    assert final["status"] == "completed"
    assert comparable(final) == expected
    assert list((run / ".hydra").glob("resume-*/overrides.yaml"))
    assert "seed=3" in OmegaConf.load(run / ".hydra" / "overrides.yaml")
