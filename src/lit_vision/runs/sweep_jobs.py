"""A sweep's jobs as they are found on disk: ``<job>/.hydra/overrides.yaml`` and ``<job>/metrics.json``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

# Overrides that say how a sweep was launched, not what a job trains: left out of the summary.
LAUNCH_ONLY = ("resume_sweep",)


@dataclass
class JobResult:
    """One job of a sweep as found on disk."""

    name: str
    path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.metrics:
            return "no metrics.json"
        return str(self.metrics.get("status") or "completed")

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def pruned(self) -> bool:
        """Stopped early by the Optuna pruner: finished on purpose, neither completed nor failed."""
        return self.status == "pruned"

    @property
    def failed(self) -> bool:
        return not (self.ok or self.pruned)

    @property
    def value(self) -> float | None:
        value = self.metrics.get("optimized_value")
        if not self.ok or value is None:
            return None
        value = float(value)
        return value if math.isfinite(value) else None

    @property
    def error(self) -> str:
        return str(self.metrics.get("error") or "")


def _job_sort_key(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)


def collect_jobs(sweep_dir: str | Path) -> list[JobResult]:
    """Every job folder of ``sweep_dir`` (one holding ``.hydra/overrides.yaml`` or ``metrics.json``)."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for path in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=_job_sort_key):
        overrides_file = path / ".hydra" / "overrides.yaml"
        metrics_file = path / "metrics.json"
        if not overrides_file.is_file() and not metrics_file.is_file():
            continue
        overrides: dict[str, str] = {}
        if overrides_file.is_file():
            for item in OmegaConf.to_container(OmegaConf.load(overrides_file)) or []:
                key, _, value = str(item).partition("=")
                if key not in LAUNCH_ONLY:
                    overrides[key] = value
        metrics: dict[str, Any] = {}
        if metrics_file.is_file():
            try:
                metrics = json.loads(metrics_file.read_text())
            except (OSError, ValueError):
                metrics = {"status": "unreadable metrics.json"}
        jobs.append(JobResult(path.name, path, overrides, metrics))
    return jobs
