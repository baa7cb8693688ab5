"""``tune=lr_find`` / ``tune=batch_size``: Lightning's Tuner before the fit writes its suggestion and plot
into the run folder, and the fit uses the suggestion only with ``tune.apply=true``."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from lit_vision.errors import UserError
from lit_vision.runs.run import train
from lit_vision.runs.tuning import tune_before_fit, tune_options
from tests.helpers import compose_cfg, without_hydra

RUN = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
    "callbacks=[model_checkpoint]",
    "model.net.channels=[4,8]",
    "test=false",
]
LR_FIND = ["tune=lr_find", "tune.num_training=30", "tune.early_stop_threshold=null"]


class SeenBatchSize(L.Callback):
    """Remembers the batch size of the fit's training data."""

    seen: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        SeenBatchSize.seen = int(trainer.datamodule.batch_size)


def run(run_dir, *extra: str) -> dict:
    metrics, _ = train(without_hydra(compose_cfg([*RUN, *extra], output_dir=run_dir)))
    assert metrics["status"] == "completed"
    return metrics


def saved_lr(metrics: dict) -> float:
    checkpoint = torch.load(metrics["best_model_path"], map_location="cpu", weights_only=True)
    return float(checkpoint["hyper_parameters"]["optimizer"]["lr"])


def test_lr_finder_writes_plot_and_suggestion_and_keeps_the_lr(tmp_path):
    metrics = run(tmp_path / "run", *LR_FIND, "optim.lr=0.123")
    result = json.loads((tmp_path / "run" / "tune.json").read_text())
    assert result["mode"] == "lr_find" and result["applied"] is False
    assert 1e-8 <= result["suggestion"] <= 1.0
    assert len(result["lr"]) == len(result["loss"]) == 30
    assert result["lr"] == sorted(result["lr"])  # the range test raises the lr step by step
    png = (tmp_path / "run" / "lr_find.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert saved_lr(metrics) == pytest.approx(0.123)  # not applied: the configured lr trains
    # the finder's own trainer writes no checkpoint of the run, and removes its temporary one
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert len(names) == 3 and names[0] == "best.ckpt" and names[1].startswith("epoch000-")
    assert names[2] == "last.ckpt"
    assert not list((tmp_path / "run").glob("*.ckpt")) and not list((tmp_path / "run").glob(".*.ckpt"))


def test_lr_finder_suggestion_is_used_when_applied(tmp_path):
    metrics = run(tmp_path / "run", *LR_FIND, "tune.apply=true", "optim.lr=0.123")
    result = json.loads((tmp_path / "run" / "tune.json").read_text())
    assert result["applied"] is True and result["configured"] == pytest.approx(0.123)
    assert saved_lr(metrics) == pytest.approx(result["suggestion"])
    assert result["suggestion"] != pytest.approx(0.123)


def test_batch_size_finder_suggestion_is_used_only_when_applied(tmp_path):
    probe = f"+callbacks.seen._target_={__name__}.SeenBatchSize"
    finder = ["tune=batch_size", "tune.max_trials=2", "tune.steps_per_trial=1", "data.batch_size=4", probe]
    run(tmp_path / "kept", *finder)
    kept = json.loads((tmp_path / "kept" / "tune.json").read_text())
    assert kept["mode"] == "batch_size" and kept["configured"] == 4 and kept["suggestion"] > 4
    assert SeenBatchSize.seen == 4

    run(tmp_path / "applied", *finder, "tune.apply=true")
    applied = json.loads((tmp_path / "applied" / "tune.json").read_text())
    assert applied["applied"] is True
    assert SeenBatchSize.seen == applied["suggestion"] > 4


def test_no_tune_group_means_no_finder(tmp_path):
    assert tune_options(compose_cfg(RUN)) is None


@pytest.mark.parametrize(
    "node, key",
    [({"mode": "lr_search"}, "tune.mode"), ({"mode": "lr_find", "apply": "yes"}, "tune.apply")],
)
def test_bad_tune_values_name_the_key(node, key):
    cfg = OmegaConf.create({"tune": node})
    with pytest.raises(UserError, match=key):
        tune_options(cfg)


def test_lr_finder_with_fast_dev_run_is_a_user_error(tmp_path):
    cfg = compose_cfg([*RUN, *LR_FIND, "debug=fast_dev_run"], output_dir=tmp_path / "run")
    with pytest.raises(UserError, match="fast_dev_run"):
        train(without_hydra(cfg))


def test_finder_on_several_devices_is_a_user_error(tmp_path):
    cfg = without_hydra(compose_cfg([*RUN, *LR_FIND, "trainer=ddp_cpu", "seed=1"], output_dir=tmp_path))
    with pytest.raises(UserError, match=r"trainer\.devices=1"):
        tune_before_fit(cfg, None, None, tmp_path, resuming=False)


def test_resumed_run_skips_the_finder(tmp_path):
    cfg = without_hydra(compose_cfg([*RUN, *LR_FIND, "seed=1"], output_dir=tmp_path))
    assert tune_before_fit(cfg, None, None, tmp_path, resuming=True) is None
    assert not (tmp_path / "tune.json").exists()
