"""Accumulating a stage's metrics and loss on the device over an epoch, with no host sync per step."""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection


class BufferedMetrics:
    """Collects ``(outputs, target)`` batches on their device and updates ``metrics`` with them in chunks
    of at least ``chunk`` samples: the results are those of per-batch updates, at a fraction of the cost.
    ``chunk <= 1`` updates with every batch (large per-sample outputs such as masks)."""

    def __init__(self, metrics: MetricCollection, chunk: int = 4096) -> None:
        self.metrics = metrics
        self.chunk = int(chunk)
        self._outputs: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._count = 0

    def update(self, outputs: torch.Tensor, target: torch.Tensor) -> None:
        """Keep one batch (detached); flush when ``chunk`` samples are waiting."""
        if self.chunk <= 1:
            self.metrics.update(outputs.detach(), target.detach())
            return
        self._outputs.append(outputs.detach())
        self._targets.append(target.detach())
        self._count += target.shape[0]
        if self._count >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Update the metrics with everything waiting."""
        if self._targets:
            self.metrics.update(torch.cat(self._outputs), torch.cat(self._targets))
        self._outputs, self._targets, self._count = [], [], 0

    @property
    def pending(self) -> bool:
        """Whether anything was collected since the last reset."""
        return bool(self._targets) or any(m.update_called for m in self.metrics.values())

    def compute(self) -> dict[str, torch.Tensor]:
        """Flush, then compute every metric."""
        self.flush()
        return self.metrics.compute()

    def state(self) -> dict[str, dict]:
        """The metrics' accumulated states (tensors, lists of tensors, update counts), after a flush: what a
        checkpoint written mid-epoch needs to carry so a resumed epoch computes over all its batches."""
        self.flush()
        return {
            name: {"states": dict(metric.metric_state), "updates": int(metric._update_count)}
            for name, metric in self.metrics.items(keep_base=True)
        }

    def load_state(self, saved: dict[str, dict]) -> None:
        """Restore what :meth:`state` returned (metrics missing from ``saved`` stay as they are)."""
        self.reset()
        for name, metric in self.metrics.items(keep_base=True):
            if name not in saved:
                continue
            for key, value in saved[name]["states"].items():
                setattr(metric, key, value)
            metric._update_count = int(saved[name]["updates"])
            metric._computed = None

    def reset(self) -> None:
        """Drop waiting batches and reset the metrics."""
        self._outputs, self._targets, self._count = [], [], 0
        self.metrics.reset()


class RunningMean:
    """A batch-size-weighted mean of a scalar tensor, accumulated on its device (no host sync per step)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def update(self, value: torch.Tensor, n: int) -> None:
        """Add ``value`` (a mean over ``n`` samples)."""
        value = value.detach() * n
        self.total = value if self.total is None else self.total + value
        self.count += int(n)

    def state(self) -> dict[str, torch.Tensor | int | None]:
        """The running total and count (see :meth:`BufferedMetrics.state`)."""
        return {"total": self.total, "count": self.count}

    def load_state(self, saved: dict[str, torch.Tensor | int | None]) -> None:
        """Restore what :meth:`state` returned."""
        self.total, self.count = saved["total"], int(saved["count"] or 0)

    def compute_and_reset(self) -> torch.Tensor:
        """The mean so far (NaN when nothing was added); then start again."""
        mean = (
            self.total / self.count if self.total is not None and self.count else torch.tensor(float("nan"))
        )
        self.total, self.count = None, 0
        return mean
