"""Resumable sweeps (``resume_sweep=true``): what a job of a sweep that ran before does this time.

Rerunning a multirun command with ``hydra.sweep.dir=<its folder> resume_sweep=true`` gives every job the
same folder as before (``<sweep>/<job number>``); what the previous attempt left there decides:

- ``metrics.json`` says ``completed`` (or ``pruned``): the job is skipped and reports its stored value;
- ``checkpoints/last.ckpt`` exists and the job was interrupted or killed: training resumes from it;
- the job failed, or was killed before it saved a checkpoint: it runs again from scratch; the files of the
  failed attempt are moved into ``<job>/previous_attempts/<n>/`` (kept, never deleted).

The sweep as a whole is checked in :class:`lit_vision.runs.hydra_callbacks.RunDirGuard`: the overrides
must be those of the sweep that wrote the folder, so job ``n`` means the same settings.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, read_write

from lit_vision.config.overrides import quote_value
from lit_vision.errors import UserError

RESUME_KEY = "resume_sweep"
FINISHED = ("completed", "pruned")
LAST_CKPT = Path("checkpoints") / "last.ckpt"
PREVIOUS_ATTEMPTS = "previous_attempts"
# Left in place when a failed attempt is moved aside: Hydra has just rewritten .hydra/ for this attempt and
# appends this attempt's log to the job's log file.
_KEPT = (".hydra", PREVIOUS_ATTEMPTS)


@dataclass(frozen=True)
class JobPlan:
    """What to do with one job: ``skip`` (return ``value``), ``resume`` (from ``ckpt_path``) or ``fresh``."""

    action: str
    reason: str
    value: float | None = None
    ckpt_path: Path | None = None


def read_metrics(job_dir: Path) -> dict[str, Any]:
    """The job's ``metrics.json``, or ``{}`` when it has none (or an unreadable one)."""
    try:
        return json.loads((job_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def plan_job(job_dir: str | Path) -> JobPlan:
    """Decide from what a previous attempt left in ``job_dir`` whether to skip, resume or rerun the job."""
    job_dir = Path(job_dir)
    metrics = read_metrics(job_dir)
    status = str(metrics.get("status") or "")
    if status in FINISHED:
        value = metrics.get("optimized_value")
        return JobPlan("skip", f"already {status}", value=None if value is None else float(value))
    last = job_dir / LAST_CKPT
    if status != "failed" and last.is_file():
        return JobPlan("resume", f"{status or 'killed'}; resuming from {last}", ckpt_path=last)
    if status == "failed":
        return JobPlan("fresh", "failed before; running it again")
    return JobPlan("fresh", "no checkpoint to resume from; running it again" if status else "new job")


def set_aside_previous_attempt(job_dir: str | Path) -> Path | None:
    """Move what an earlier attempt left in ``job_dir`` (but ``.hydra`` and log files) into
    ``previous_attempts/<n>/``; return that folder, or None when there was nothing to move."""
    job_dir = Path(job_dir)
    leftovers = [p for p in job_dir.iterdir() if p.name not in _KEPT and p.suffix != ".log"]
    if not leftovers:
        return None
    attempts = job_dir / PREVIOUS_ATTEMPTS
    n = 1
    while (attempts / str(n)).exists():
        n += 1
    target = attempts / str(n)
    target.mkdir(parents=True)
    for path in leftovers:
        shutil.move(str(path), str(target / path.name))
    return target


def _comparable(overrides: list[str]) -> list[str]:
    return sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") != RESUME_KEY)


def check_same_sweep(sweep_dir: Path, overrides: list[str]) -> None:
    """Refuse to resume ``sweep_dir`` with other overrides than the sweep that wrote it (its multirun.yaml);
    ``resume_sweep`` itself and ``hydra.*`` settings (e.g. a larger ``hydra.sweeper.n_trials``) may change."""
    record = sweep_dir / "multirun.yaml"
    if not record.is_file():
        return
    previous = OmegaConf.select(OmegaConf.load(record), "hydra.overrides.task", default=None)
    if previous is None:
        return
    before = _comparable([str(o) for o in previous])
    now = _comparable(overrides)
    if before != now:
        raise UserError(
            f"resume_sweep=true: hydra.sweep.dir={sweep_dir} holds a sweep started with other overrides "
            f"({' '.join(before) or 'none'}) than these ({' '.join(now) or 'none'}), so its job folders would "
            "mean other settings. Rerun the same command, or choose a new hydra.sweep.dir."
        )


def resume_job_from(ckpt_path: Path) -> None:
    """Record ``ckpt_path=<ckpt_path>`` in the running job's task overrides: Lightning's DDP launcher starts
    the job's other processes from them (``run.ddp_job_scope``), so every rank resumes from the checkpoint."""
    if not HydraConfig.initialized():
        return
    task = HydraConfig.get().overrides.task
    kept = [str(o) for o in task if str(o).split("=", 1)[0].lstrip("+") != "ckpt_path"]
    with read_write(HydraConfig.get().overrides):
        HydraConfig.get().overrides.task = [*kept, f"ckpt_path={quote_value(str(ckpt_path))}"]
