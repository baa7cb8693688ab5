"""What a training step and a run's start-up cost beyond the model: no-op callback hooks kept out of the
per-step dispatch, Lightning's NVML CUDA check dropped where NVML is absent, and the heavy optional
libraries not imported by a training run. Nothing here is timed."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import pytest
from lightning.pytorch.callbacks import Callback

from lit_vision.utils import hardware
from lit_vision.utils.callback_hooks import PER_BATCH_HOOKS, skip_noop_batch_hooks
from tests.helpers import ROOT, compose_cfg, without_hydra


class CountsTrainBatches(Callback):
    def __init__(self) -> None:
        self.train_batches = 0
        self.epochs = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.train_batches += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs += 1


def test_inherited_batch_hooks_become_none_and_overridden_ones_stay():
    counting, plain = CountsTrainBatches(), Callback()
    assert skip_noop_batch_hooks([counting, plain]) == 2 * len(PER_BATCH_HOOKS) - 1
    assert callable(counting.on_train_batch_end)
    assert all(getattr(plain, hook) is None for hook in PER_BATCH_HOOKS)
    assert counting.on_train_batch_start is None and counting.on_before_backward is None
    # per-epoch and per-run hooks are never touched
    assert callable(plain.on_train_epoch_end) and callable(plain.on_fit_start)
    assert skip_noop_batch_hooks([counting, plain]) == 0  # idempotent


def test_a_run_keeps_no_op_hooks_out_of_the_step_and_still_calls_the_real_ones(tmp_path, monkeypatch):
    from lit_vision.runs.run import train

    cfg = without_hydra(
        compose_cfg(
            [
                "logger=none",
                "trainer.max_epochs=2",
                "trainer.limit_train_batches=3",
                "trainer.limit_val_batches=1",
                "trainer.num_sanity_val_steps=0",
                "test=false",
            ],
            tmp_path,
        )
    )
    counting = CountsTrainBatches()
    seen: dict[str, list] = {}

    class Keep(Callback):
        def on_fit_end(self, trainer, pl_module) -> None:
            seen["callbacks"] = list(trainer.callbacks)

    original = L.Trainer.__init__

    def with_counter(self, *args, callbacks=None, **kwargs):
        original(self, *args, callbacks=[*(callbacks or []), counting, Keep()], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_counter)
    train(cfg)
    assert counting.train_batches == 6 and counting.epochs == 2
    callbacks = seen["callbacks"]
    assert len(callbacks) > 5  # the default callbacks are there
    for callback in callbacks:
        for hook in PER_BATCH_HOOKS:
            inherited = getattr(type(callback), hook) is getattr(Callback, hook)
            assert (getattr(callback, hook) is None) == inherited, (type(callback).__name__, hook)


# ----------------------------------------------------------------------------- NVML check
@pytest.mark.parametrize(
    ("env", "built", "nvml", "dropped"),
    [
        ("1", True, False, True),
        ("1", True, True, False),
        (None, True, False, False),
        ("1", False, False, False),
    ],
)
def test_nvml_check_is_dropped_only_where_nvml_cannot_load(monkeypatch, env, built, nvml, dropped):
    if env is None:
        monkeypatch.delenv(hardware.NVML_CHECK_ENV, raising=False)
    else:
        monkeypatch.setenv(hardware.NVML_CHECK_ENV, env)
    monkeypatch.setattr(hardware.torch.backends.cuda, "is_built", lambda: built)
    monkeypatch.setattr(hardware, "nvml_library_present", lambda: nvml)
    assert hardware.drop_failing_nvml_check() is dropped
    expected = None if (env is None or dropped) else env
    assert os.environ.get(hardware.NVML_CHECK_ENV) == expected


def test_nvml_library_probe_answers_without_raising():
    assert hardware.nvml_library_present() in (True, False)


# ----------------------------------------------------------------------------- start-up
HEAVY_OPTIONAL = (
    "pandas",
    "timm",
    "segmentation_models_pytorch",
    "wandb",
    "mlflow",
    "optuna",
    "onnx",
    "skimage",
)


def test_a_training_run_imports_none_of_the_optional_heavy_libraries():
    code = (
        "import sys\n"
        "import lit_vision.cli.train, lit_vision.runs.run, lit_vision.tasks.segmentation\n"
        "from lit_vision.inference import load_model\n"
        f"print(','.join(m for m in {HEAVY_OPTIONAL!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == ""


def test_segmentation_losses_still_build_from_smp():
    from lit_vision.tasks.segmentation_losses import SegmentationLoss

    loss = SegmentationLoss("bce+dice", mode="binary", ignore_index=255)
    assert [type(term).__name__ for term in loss.terms][1] == "DiceLoss"


# ----------------------------------------------------------------------------- the bench rows' arithmetic
def test_startup_split_takes_fit_test_and_the_bare_import_off_the_wall_and_cpu_time():
    from bench.startup import split

    run = {
        "wall": 10.0,
        "fit_start": 3.0,
        "first_step": 3.5,
        "fit_end": 6.0,
        "test_start": 6.5,
        "test_end": 7.5,
    }
    cpu = {"cpu": 9.0, "cpu_fit_start": 2.0, "cpu_fit_end": 4.5, "cpu_test_start": 5.0, "cpu_test_end": 5.5}
    parts = split({**run, **cpu}, bare=4.0, bare_cpu=3.5)
    assert parts == {"first_step": 3.5, "fit": 3.0, "test": 1.0, "teardown": 2.5, "own": 2.0, "own_cpu": 2.5}


def test_startup_clock_stamps_each_event_once(tmp_path):
    from bench.startup import EVENTS, StartupClock

    clock = StartupClock(str(tmp_path / "stamps.json"))
    clock.on_fit_start(None, None)
    clock.on_train_batch_start(None, None, None, 0)
    first = clock.stamps["first_step"]
    clock.on_train_batch_start(None, None, None, 1)  # later steps leave the first step's stamp alone
    for hook in ("on_fit_end", "on_test_start", "on_test_end"):
        getattr(clock, hook)(None, None)
    import json

    stamps = json.loads((tmp_path / "stamps.json").read_text())
    assert [k for k in stamps if not k.startswith("cpu_")] == list(EVENTS) and stamps["first_step"] == first
    assert all(f"cpu_{event}" in stamps for event in EVENTS)


def test_decode_floor_decodes_every_file_to_rgb(tmp_path):
    from PIL import Image

    from bench.predict_speed import decode, decode_floor_seconds

    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.new("L", (6, 4), color=i * 40).save(path)
        paths.append(path)
    assert decode(paths[0]).shape == (4, 6, 3)
    seconds, how = decode_floor_seconds(paths, repeats=1)
    assert seconds > 0 and how.endswith(("thread", "threads"))


# ----------------------------------------------------------------------------- quick exit
def test_exit_now_finishes_threads_atexit_handlers_and_logs_before_ending(tmp_path):
    log_file, marker = tmp_path / "run.log", tmp_path / "atexit.txt"
    code = f"""
import atexit, logging, pathlib, threading, time
from lit_vision.utils.quick_exit import exit_now
logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO)
atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text("ran"))
def late():
    time.sleep(0.2)
    logging.getLogger("t").info("thread done")
threading.Thread(target=late).start()
logging.getLogger("t").info("main done")
print("printed", end="")
exit_now(3)
print("never")
"""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 3
    assert result.stdout == "printed"
    assert marker.read_text() == "ran"
    assert "main done" in log_file.read_text() and "thread done" in log_file.read_text()


def test_step_cost_takes_the_median_after_the_first_epoch_and_restores_the_nvml_variable(monkeypatch):
    from bench.step_cost import NVML_ENV, ms_per_step, nvml_check

    assert ms_per_step([[10, 1.0], [10, 0.1], [20, 0.4], [10, 0.3]]) == 20.0
    assert ms_per_step([[4, 0.02]]) == 5.0
    monkeypatch.setenv(NVML_ENV, "0")
    with nvml_check(True):
        assert os.environ[NVML_ENV] == "1"
    with nvml_check(False):
        assert NVML_ENV not in os.environ
    assert os.environ[NVML_ENV] == "0"
