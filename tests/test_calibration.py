"""Calibration: ECE and the reliability diagram at test, temperature scaling through checkpoint, export and
predict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lit_vision.callbacks.calibration import (
    CalibrationReport,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
)
from lit_vision.inference.checkpoint import load_model
from lit_vision.inference.export import export_model
from lit_vision.inference.predictor import Predictor
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, run_train_py, without_hydra

TINY_RUN = [
    "trainer.max_epochs=2",
    "+trainer.limit_train_batches=4",
    "trainer.num_sanity_val_steps=0",
    "logger=csv",
]


def two_class_probs(confidences: list[float], predicted: list[int]) -> torch.Tensor:
    """``(N, 2)`` probabilities whose top class is ``predicted`` with probability ``confidences``."""
    probs = torch.empty(len(confidences), 2)
    for i, (p, c) in enumerate(zip(confidences, predicted, strict=True)):
        probs[i, c], probs[i, 1 - c] = p, 1 - p
    return probs


def test_ece_of_a_hand_computed_example():
    # Bin [0.867, 0.933): two samples at 0.9, one right -> |0.5 - 0.9| = 0.4 with weight 2/5.
    # Bin [0.6, 0.667): three samples at 0.62, all right -> |1.0 - 0.62| = 0.38 with weight 3/5.
    probs = two_class_probs([0.9, 0.9, 0.62, 0.62, 0.62], [0, 1, 0, 1, 1])
    target = torch.tensor([0, 0, 0, 1, 1])
    assert expected_calibration_error(probs, target) == pytest.approx(0.4 * 2 / 5 + 0.38 * 3 / 5, abs=1e-6)
    bins = [b for b in reliability_bins(probs, target) if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in bins] == [(3, 1.0), (2, 0.5)]
    assert [b["confidence"] for b in bins] == pytest.approx([0.62, 0.9])
    assert bins[1]["lower"] == pytest.approx(13 / 15)


def test_a_perfectly_calibrated_set_has_zero_ece():
    probs = two_class_probs([0.75] * 4, [0, 0, 0, 0])
    assert expected_calibration_error(probs, torch.tensor([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-6)


def overconfident_toy(
    scale: float = 4.0, n: int = 4000, classes: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from ``softmax(z)``, logits reported as ``scale * z``: over-confident by ``scale``."""
    generator = torch.Generator().manual_seed(0)
    true_logits = torch.randn(n, classes, generator=generator) * 1.5
    labels = torch.multinomial(true_logits.softmax(dim=1), 1, generator=generator).squeeze(1)
    return scale * true_logits, labels


def test_temperature_fit_lowers_nll_and_ece_of_an_overconfident_toy():
    logits, labels = overconfident_toy(scale=4.0)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(4.0, rel=0.15)
    assert nll(logits, labels, temperature) < nll(logits, labels) - 0.5
    before = expected_calibration_error(logits.softmax(dim=1), labels)
    after = expected_calibration_error((logits / temperature).softmax(dim=1), labels)
    assert after < before / 3


def test_the_report_figure_draws_both_panels():
    logits, labels = overconfident_toy(n=200)
    callback = CalibrationReport()
    report = callback.report(logits, labels, temperature=2.0)
    assert report["ece_calibrated"] < report["ece"]
    figure = callback.figure(report)
    assert len(figure.axes) == 4  # diagram + sample shares, before and after


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("calibrated")
    metrics, _ = train(without_hydra(compose_cfg([*TINY_RUN, "calibrate=temperature"], output_dir=run_dir)))
    assert metrics["status"] == "completed"
    return run_dir


def test_test_metrics_report_ece_before_and_after_the_temperature(calibrated_run):
    metrics = json.loads((calibrated_run / "metrics.json").read_text())
    for key in ("test/ece", "test/nll", "test/ece_calibrated", "test/nll_calibrated", "test/temperature"):
        assert math.isfinite(metrics[key]), key
    assert 0.0 <= metrics["test/ece"] <= 1.0
    report = json.loads((calibrated_run / "calibration" / "test.json").read_text())
    assert report["ece"] == pytest.approx(metrics["test/ece"], abs=1e-6)
    assert sum(b["count"] for b in report["bins"]) == report["samples"] > 0
    assert (calibrated_run / "calibration" / "test.png").stat().st_size > 1000


def test_the_temperature_round_trips_through_checkpoint_export_and_predict(calibrated_run, tmp_path):
    ckpt = calibrated_run / "checkpoints" / "best.ckpt"
    stored = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert isinstance(stored["temperature"], float)
    metrics = json.loads((calibrated_run / "metrics.json").read_text())
    assert stored["temperature"] == pytest.approx(metrics["test/temperature"])  # the tested weights' own

    model = load_model(ckpt)
    assert model.task.temperature == stored["temperature"]
    images = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        calibrated = Predictor(model.task, "classification", channels_last=False).scores(images)
        logits = model.task(images).float()
    assert torch.allclose(calibrated, (logits / stored["temperature"]).softmax(dim=1), atol=1e-5)
    assert not torch.allclose(calibrated, logits.softmax(dim=1), atol=1e-3)

    result = export_model(ckpt, "torchscript", tmp_path / "model.pt")
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["output"]["temperature"] == pytest.approx(stored["temperature"])
    assert "temperature" in sidecar["output"]["to_prediction"]


def test_without_calibrate_the_checkpoint_has_no_temperature_and_test_reports_ece(tmp_path):
    metrics, _ = train(without_hydra(compose_cfg(TINY_RUN, output_dir=tmp_path)))
    assert 0.0 <= metrics["test/ece"] <= 1.0
    assert "test/ece_calibrated" not in metrics
    stored = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert "temperature" not in stored
    assert load_model(tmp_path / "checkpoints" / "best.ckpt").task.temperature is None


@pytest.mark.slow
def test_two_process_ddp_gathers_every_test_logit_once(tmp_path):
    """DDP on 2 CPU processes: the ECE covers the whole test split (gathered, padding dropped), no hang."""
    proc = run_train_py(
        [
            *TINY_RUN,
            "calibrate=temperature",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            f"hydra.run.dir={tmp_path}",
        ],
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "calibration" / "test.json").read_text())
    assert report["samples"] == 270  # the digits test split
    assert report["temperature"] is not None
