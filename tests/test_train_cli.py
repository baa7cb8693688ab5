"""train.py end to end as a user runs it (subprocess): fast_dev_run, the default run, and config errors."""

from __future__ import annotations

import json

from tests.helpers import run_train_py


def test_fast_dev_run_through_train_py(tmp_path):
    proc = run_train_py(["debug=fast_dev_run", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "test/acc" in metrics
    assert (tmp_path / "config.yaml").is_file()
    assert "Outputs:" in proc.stdout + proc.stderr


def test_unknown_group_option_lists_the_choices_without_traceback(tmp_path):
    proc = run_train_py(["data=nonexistent", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode != 0
    err = proc.stderr
    assert "Could not find 'data/nonexistent'" in err
    assert "Available options in 'data'" in err and "digits" in err
    assert "Traceback" not in err + proc.stdout


def test_default_experiment_reaches_95_percent_on_digits(tmp_path):
    """The embedded default (`python train.py`) trains offline and reports test accuracy >= 0.95."""
    proc = run_train_py([f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.95
    best = metrics["best_model_path"]
    assert best and best.endswith(".ckpt") and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
