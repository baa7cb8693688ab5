"""``test_ckpt``: which weights of a fit the test split scores (the best checkpoint, or the last weights)."""

from __future__ import annotations

import pytest
import torch
from lightning import Trainer

from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import load_task_from_checkpoint
from lit_vision.runs.run import train, validate_run_keys
from tests.helpers import compose_cfg, without_hydra

# Three short epochs on digits. The monitor is val/loss with mode max, so the "best" checkpoint is the
# worst epoch (the first): it differs from the last weights, and each choice is visible in test/loss.
RUN = [
    "trainer.max_epochs=3",
    "+trainer.limit_train_batches=6",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "callbacks=[model_checkpoint]",
    "model.monitor=val/loss",
    "model.monitor_mode=max",
]


def fit(run_dir, choice: str) -> dict:
    cfg = compose_cfg([*RUN, f"test_ckpt={choice}"], output_dir=run_dir)
    metrics, _ = train(without_hydra(cfg))
    return metrics


def scored_test_loss(checkpoint, run_dir) -> float:
    """test/loss of a checkpoint file, scored on the run's own test split."""
    from hydra.utils import instantiate

    cfg = compose_cfg(RUN, output_dir=run_dir)
    task = load_task_from_checkpoint(checkpoint, cfg.model)
    # the run's own precision (bf16-mixed where the CPU computes bf16 natively, else 32-true): the same
    # arithmetic as the run's test, whichever the machine resolves
    trainer = Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_test_batches=2,
        precision=cfg.trainer.precision,
    )
    torch.manual_seed(0)
    return float(trainer.test(task, datamodule=instantiate(cfg.data), verbose=False)[0]["test/loss"])


@pytest.mark.usefixtures("auto_precision")  # a run's test loss against a re-scoring
def test_best_and_last_score_their_own_weights(tmp_path):
    best = fit(tmp_path / "best", "best")
    last = fit(tmp_path / "last", "last")
    assert best["tested_weights"] == best["best_model_path"] and "epoch000" in best["best_model_path"]
    assert last["tested_weights"] == "last"
    # same seed, same fit: only the tested weights differ
    assert best["best_model_score"] == pytest.approx(last["best_model_score"])
    assert best["test/loss"] != pytest.approx(last["test/loss"])
    assert best["test/loss"] == pytest.approx(
        scored_test_loss(best["best_model_path"], tmp_path / "best"), rel=1e-5
    )
    last_ckpt = tmp_path / "last" / "checkpoints" / "last.ckpt"
    # last.ckpt follows every epoch even when the monitored metric does not improve (Lightning 2.6's
    # save_last alone would have left it at the best epoch, 0)
    assert torch.load(last_ckpt, map_location="cpu", weights_only=False)["epoch"] == 2
    assert last["test/loss"] == pytest.approx(scored_test_loss(last_ckpt, tmp_path / "last"), rel=1e-5)


def test_unknown_test_ckpt_names_the_choices(tmp_path):
    cfg = compose_cfg(["test_ckpt=final"], output_dir=tmp_path)
    with pytest.raises(UserError, match=r"test_ckpt='final' is not one of best, last"):
        validate_run_keys(without_hydra(cfg))
