"""Weight averaging (``callbacks=[...,ema]`` / ``[...,swa]``): the averaged weights are validated, saved as
the checkpoint's weights and tested; a resume restores the average exactly; checkpoints stay data-only."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.optim.swa_utils import AveragedModel

from lit_vision.callbacks.weight_averaging import EMA, SWA, WarmedUpEMAUpdate
from lit_vision.inference.checkpoint import load_task_from_checkpoint
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, without_hydra

RUN = [
    "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
    "model.net.channels=[4,8]",
    # a high lr and a short memory: the raw weights move far from their average within a few steps
    "optim.lr=0.01",
]


class TestedWeights(L.Callback):
    """Remembers the weights the test stage starts with."""

    seen: dict[str, torch.Tensor] = {}

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        TestedWeights.seen = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


PROBE = f"+callbacks.tested._target_={__name__}.TestedWeights"


def fit(run_dir: Path, *extra: str) -> dict:
    cfg = compose_cfg([*RUN, "callbacks=[model_checkpoint,ema]", PROBE, *extra], output_dir=run_dir)
    metrics, _ = train(without_hydra(cfg))
    assert metrics["status"] == "completed"
    return metrics


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("test_ckpt", ["best", "last"])
def test_ema_weights_are_checkpointed_and_tested(tmp_path, test_ckpt):
    metrics = fit(
        tmp_path / "run", "trainer.max_epochs=2", "callbacks.ema.decay=0.5", f"test_ckpt={test_ckpt}"
    )
    best = torch.load(metrics["best_model_path"], map_location="cpu", weights_only=True)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    for checkpoint in (best, last):
        # the average is the checkpoint's weights; the raw ones are kept beside it for resuming
        assert differs(checkpoint["state_dict"], checkpoint["current_model_state"])
        assert int(checkpoint["averaging_state"]["n_averaged"]) > 0
    # the test stage scores the average: of the best checkpoint, or at the end of training
    tested = best if test_ckpt == "best" else last
    assert_same(TestedWeights.seen, tested["state_dict"])
    # evaluate, predict and export rebuild the task from the checkpoint: the average again
    rebuilt = load_task_from_checkpoint(metrics["best_model_path"], None)
    assert_same(rebuilt.state_dict(), best["state_dict"])


def test_resume_restores_the_average_exactly(tmp_path):
    common = ["callbacks.ema.decay=0.8", "test=false", "trainer.deterministic=true"]
    fit(tmp_path / "straight", "trainer.max_epochs=2", *common)
    fit(tmp_path / "first", "trainer.max_epochs=1", *common)
    first_last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    fit(tmp_path / "resumed", "trainer.max_epochs=2", f"ckpt_path='{first_last}'", *common)

    straight = torch.load(tmp_path / "straight/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    resumed = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == straight["global_step"] == 8
    assert_same(resumed["state_dict"], straight["state_dict"])  # the average
    assert_same(resumed["current_model_state"], straight["current_model_state"])  # the raw weights
    assert (
        int(resumed["averaging_state"]["n_averaged"]) == int(straight["averaging_state"]["n_averaged"]) == 8
    )


def test_ema_warmup_keeps_raw_weights_until_averaging_starts(tmp_path):
    # 4 steps, averaging would start at step 100: checkpoints and test hold the raw weights
    metrics = fit(tmp_path / "run", "trainer.max_epochs=1", "callbacks.ema.warmup_steps=100")
    best = torch.load(metrics["best_model_path"], map_location="cpu", weights_only=True)
    assert "current_model_state" not in best
    assert_same(TestedWeights.seen, best["state_dict"])


def test_the_decay_warm_up_forgets_the_start_of_a_short_run():
    """decay 0.999 and 100 updates: without the warm-up 0.999^99 = 91% of the first weights stay in the
    average; with it (decay min(0.999, (1+n)/(10+n)) at the n-th update) the average follows the recent
    weights."""
    assert WarmedUpEMAUpdate(0.999, warmup=True).decay_at(1) == pytest.approx(2 / 11)
    assert WarmedUpEMAUpdate(0.999, warmup=True).decay_at(10**6) == pytest.approx(0.999)
    assert WarmedUpEMAUpdate(0.999, warmup=False).decay_at(1) == pytest.approx(0.999)
    assert float(WarmedUpEMAUpdate(0.9, warmup=True).decay_at(torch.tensor(5))) == pytest.approx(6 / 15)

    def average_after_a_jump(warmup: bool) -> float:
        net = torch.nn.Linear(1, 1, bias=False)
        averaged = AveragedModel(net, **EMA(decay=0.999, decay_warmup=warmup)._kwargs)  # as Lightning does
        with torch.no_grad():
            net.weight.fill_(0.0)
            averaged.update_parameters(net)  # the first update copies the starting weights: 0
            net.weight.fill_(1.0)  # then the weights move to 1 and stay there for 99 updates
            for _ in range(99):
                averaged.update_parameters(net)
        return float(averaged.module.weight.detach())

    assert average_after_a_jump(warmup=False) == pytest.approx(1 - 0.999**99, rel=1e-3)  # ~0.094
    assert average_after_a_jump(warmup=True) > 0.99


def test_swa_averages_from_its_start_epoch(tmp_path):
    cfg = compose_cfg(
        [
            *RUN,
            "trainer.max_epochs=2",
            "callbacks=[model_checkpoint,swa]",
            "callbacks.swa.swa_epoch_start=1",
            "test=false",
        ],
        output_dir=tmp_path / "run",
    )
    train(without_hydra(cfg))
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert int(last["averaging_state"]["n_averaged"]) == 4  # the 4 steps of epoch 1 only
    assert differs(last["state_dict"], last["current_model_state"])


def test_ema_warmup_epochs_start_the_average_at_that_epoch(tmp_path):
    fit(tmp_path / "run", "trainer.max_epochs=2", "callbacks.ema.warmup_epochs=1", "test=false")
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert int(last["averaging_state"]["n_averaged"]) == 4  # the 4 steps of epoch 1 only


def test_swa_fraction_start_follows_max_epochs():
    swa = SWA(swa_epoch_start=0.5)
    trainer = L.Trainer(max_epochs=10, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    swa.setup(trainer, torch.nn.Linear(2, 2), "validate")  # not fit: no average is built
    assert swa._start_epoch == 5


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: EMA(decay=1.0), "decay"),
        (lambda: EMA(update_every_n_steps=0), "update_every_n_steps"),
        (lambda: SWA(swa_epoch_start=-1), "swa_epoch_start"),
    ],
)
def test_bad_averaging_options_name_the_key(build, message):
    with pytest.raises(ValueError, match=message):
        build()
