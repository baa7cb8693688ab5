"""Calibration of classifiers: expected calibration error (ECE) and a reliability diagram of the test, and
temperature scaling fitted on the validation split.

:class:`CalibrationReport` logs ``test/ece`` (torchmetrics ``MulticlassCalibrationError``, l1 norm, 15
equal-width confidence bins) and ``test/nll``; when the tested weights carry a temperature (see
:class:`TemperatureScaling`) also ``test/ece_calibrated``, ``test/nll_calibrated`` and ``test/temperature``.
The reliability diagram (accuracy against confidence per bin, before and after the temperature) goes to
TensorBoard (``calibration/test``) and to ``<run>/calibration/test.png``, its numbers to ``test.json``.

:class:`TemperatureScaling` (``calibrate=temperature``) fits one temperature ``T`` after every validation
epoch on that epoch's logits (LBFGS on the negative log-likelihood of ``logits / T``) and sets it on the
task, whose checkpoints then store it as a plain float (``checkpoint["temperature"]``): every checkpoint
carries the temperature of its own weights, and the tested / predicted / exported model divides its logits
by it. The argmax, hence accuracy, is unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics.functional.classification import multiclass_calibration_error

from lit_vision.callbacks.base import MonitorCallback
from lit_vision.utils.io import write_json
from lit_vision.viz.images import figure_to_array, save_png

N_BINS = 15


# ---------------------------------------------------------------------------------------------- numbers
def expected_calibration_error(probs: Tensor, target: Tensor, n_bins: int = N_BINS) -> float:
    """ECE of class probabilities ``(N, C)`` against labels ``(N,)``: the count-weighted mean over ``n_bins``
    equal-width confidence bins of ``|accuracy - mean confidence|`` (torchmetrics, l1 norm)."""
    value = multiclass_calibration_error(
        probs.float(), target.long(), num_classes=probs.shape[1], n_bins=n_bins, norm="l1"
    )
    return float(value)


def reliability_bins(probs: Tensor, target: Tensor, n_bins: int = N_BINS) -> list[dict[str, float]]:
    """Per confidence bin ``[lower, upper)`` (the last one includes 1): sample count, mean confidence and accuracy (NaN when empty),
    binned as torchmetrics bins them for the ECE."""
    confidence, predicted = probs.float().max(dim=1)
    correct = (predicted == target).float()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype)
    index = torch.bucketize(confidence, edges[1:-1], right=True)  # torchmetrics' _binning_bucketize
    bins = []
    for b in range(n_bins):
        inside = index == b
        count = int(inside.sum())
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else math.nan,
                "accuracy": float(correct[inside].mean()) if count else math.nan,
            }
        )
    return bins


def nll(logits: Tensor, target: Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)``."""
    return float(F.cross_entropy(logits.float() / temperature, target.long()))


def fit_temperature(logits: Tensor, target: Tensor, max_iter: int = 100) -> float:
    """The temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` (LBFGS on ``log T``, so ``T``
    stays positive), starting from ``T = 1``."""
    logits, target = logits.detach().float(), target.detach().long()
    with torch.inference_mode(False), torch.enable_grad():
        logits, target = logits.clone(), target.clone()  # usable by autograd even if made in inference mode
        log_t = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-9
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(logits / log_t.exp(), target)
            loss.backward()
            return loss

        optimizer.step(closure)
    value = float(log_t.detach().exp())
    return value if math.isfinite(value) and value > 0 else 1.0


def _class_scores(outputs: Any) -> tuple[Tensor, Tensor] | None:
    """``(logits (N, C), labels (N,))`` from a classification step's outputs, else None."""
    if not isinstance(outputs, dict):
        return None
    logits, target = outputs.get("logits"), outputs.get("target")
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        return None
    if logits.ndim != 2 or target.ndim != 1 or target.is_floating_point() or logits.shape[1] < 2:
        return None
    return logits.detach().float(), target.detach()


class _ScoreCollector:
    """Logits and labels of one evaluation epoch, kept on their device, gathered from every rank."""

    def __init__(self) -> None:
        self.logits: list[Tensor] = []
        self.targets: list[Tensor] = []

    def reset(self) -> None:
        self.logits, self.targets = [], []

    def add(self, outputs: Any) -> None:
        found = _class_scores(outputs)
        if found is not None:
            self.logits.append(found[0])
            self.targets.append(found[1])

    def gathered(self, pl_module: L.LightningModule) -> tuple[Tensor, Tensor] | None:
        """Every rank's scores on the CPU (a collective under DDP: call it on every rank), or None."""
        if not self.logits:
            return None
        logits, target = torch.cat(self.logits), torch.cat(self.targets)
        self.reset()
        if pl_module.trainer.world_size > 1:
            # all_gather needs equal shapes: pad every rank to the largest count, then drop the padding
            counts = pl_module.all_gather(torch.tensor([len(target)], device=target.device)).flatten()
            pad = int(counts.max()) - len(target)
            logits = pl_module.all_gather(F.pad(logits, (0, 0, 0, pad)))
            target = pl_module.all_gather(F.pad(target, (0, pad)))
            logits = torch.cat([logits[rank, : int(n)] for rank, n in enumerate(counts)])
            target = torch.cat([target[rank, : int(n)] for rank, n in enumerate(counts)])
        return logits.cpu(), target.cpu()


# ---------------------------------------------------------------------------------------------- temperature
class TemperatureScaling(Callback):
    """Fits the task's ``temperature`` on each validation epoch's logits (``calibrate=temperature``).

    Args:
        max_iter: LBFGS iterations per fit.
    """

    def __init__(self, max_iter: int = 100) -> None:
        super().__init__()
        self.max_iter = int(max_iter)
        self._scores = _ScoreCollector()
        self.fitted = False

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._scores.reset()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not trainer.sanity_checking:
            self._scores.add(outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not hasattr(pl_module, "temperature"):
            return
        scores = self._scores.gathered(pl_module)
        if scores is None:
            return
        pl_module.temperature = fit_temperature(*scores, max_iter=self.max_iter)
        self.fitted = True
        pl_module.log("val/temperature", pl_module.temperature)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.fitted:
            rank_zero_warn(
                "calibrate=temperature fitted no temperature: no validation epoch of a classification task ran "
                "(check trainer.limit_val_batches and that the model is a classifier); predictions stay "
                "uncalibrated."
            )


# ---------------------------------------------------------------------------------------------- report
class CalibrationReport(MonitorCallback):
    """Test-time ECE, NLL and reliability diagram of a classifier (other tasks are left alone).

    Args:
        n_bins: confidence bins of the ECE and the diagram.
        save_dir: folder for ``test.png`` / ``test.json``; default ``<trainer.default_root_dir>/calibration``.
        dpi: resolution of the figure.
    """

    def __init__(self, n_bins: int = N_BINS, save_dir: str | None = None, dpi: int = 80) -> None:
        super().__init__()
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        self.n_bins = int(n_bins)
        self.save_dir = save_dir
        self.dpi = int(dpi)
        self._scores = _ScoreCollector()
        # What the last test measured (ECE, NLL, bins), for anyone who wants the numbers.
        self.last_report: dict[str, Any] = {}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._scores.reset()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.fast_dev_run:
            self._scores.add(outputs)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scores = self._scores.gathered(pl_module)
        if scores is None:
            return
        logits, target = scores
        temperature = getattr(pl_module, "temperature", None)
        report = self.report(logits, target, temperature)
        self.last_report = report
        values = {"test/ece": report["ece"], "test/nll": report["nll"]}
        if temperature is not None:
            values.update(
                {
                    "test/ece_calibrated": report["ece_calibrated"],
                    "test/nll_calibrated": report["nll_calibrated"],
                    "test/temperature": float(temperature),
                }
            )
        for name, value in values.items():
            pl_module.log(name, value, rank_zero_only=True)
        if not trainer.is_global_zero:
            return
        folder = Path(self.save_dir) if self.save_dir else Path(trainer.default_root_dir) / "calibration"
        write_json(folder / "test.json", report)
        image = figure_to_array(self.figure(report))
        save_png(image, folder / "test.png")
        self.log_image(trainer, "calibration/test", image, name="test")

    def report(self, logits: Tensor, target: Tensor, temperature: float | None) -> dict[str, Any]:
        """ECE, NLL and reliability bins of ``logits``, and of ``logits / temperature`` when given."""
        probs = logits.float().softmax(dim=1)
        report: dict[str, Any] = {
            "samples": int(target.numel()),
            "n_bins": self.n_bins,
            "ece": expected_calibration_error(probs, target, self.n_bins),
            "nll": nll(logits, target),
            "bins": reliability_bins(probs, target, self.n_bins),
            "temperature": None if temperature is None else float(temperature),
        }
        if temperature is not None:
            scaled = (logits.float() / temperature).softmax(dim=1)
            report.update(
                ece_calibrated=expected_calibration_error(scaled, target, self.n_bins),
                nll_calibrated=nll(logits, target, temperature),
                bins_calibrated=reliability_bins(scaled, target, self.n_bins),
            )
        return report

    def figure(self, report: dict[str, Any]):
        """Reliability diagram(s): accuracy per confidence bin against the diagonal, with the gap shaded and
        the share of samples per bin below; a second panel after the temperature when there is one."""
        from matplotlib.figure import Figure

        panels = [("uncalibrated", report["bins"], report["ece"])]
        if report.get("bins_calibrated") is not None:
            panels.append(
                (
                    f"temperature {report['temperature']:.3g}",
                    report["bins_calibrated"],
                    report["ece_calibrated"],
                )
            )
        figure = Figure(figsize=(4.6 * len(panels), 5.2), dpi=self.dpi, layout="constrained")
        grid = figure.add_gridspec(2, len(panels), height_ratios=[3, 1])
        for column, (title, bins, ece) in enumerate(panels):
            ax, ax_count = figure.add_subplot(grid[0, column]), figure.add_subplot(grid[1, column])
            centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
            width = bins[0]["upper"] - bins[0]["lower"]
            accuracy = [0.0 if math.isnan(b["accuracy"]) else b["accuracy"] for b in bins]
            confidence = [
                c if math.isnan(b["confidence"]) else b["confidence"]
                for c, b in zip(centres, bins, strict=True)
            ]
            ax.bar(centres, accuracy, width=width, edgecolor="black", color="#4c72b0", label="accuracy")
            gap_low = [min(a, c) for a, c in zip(accuracy, confidence, strict=True)]
            gap = [
                abs(c - a) if b["count"] else 0.0 for a, c, b in zip(accuracy, confidence, bins, strict=True)
            ]
            ax.bar(centres, gap, bottom=gap_low, width=width, color="#dd8452", alpha=0.5, label="gap")
            ax.plot([0, 1], [0, 1], "k--", linewidth=1)
            ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title}: ECE {ece:.4f}")
            ax.legend(loc="upper left")
            total = max(1, sum(b["count"] for b in bins))
            ax_count.bar(centres, [b["count"] / total for b in bins], width=width, color="gray")
            ax_count.set(xlim=(0, 1), xlabel="confidence", ylabel="share of samples")
        figure.suptitle(f"Reliability diagram: test ({report['samples']:,} images, {self.n_bins} bins)")
        return figure
