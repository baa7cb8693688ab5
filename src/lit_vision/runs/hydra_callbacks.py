"""Hydra callbacks registered in ``conf/hydra/default.yaml``.

- :class:`RunDirGuard` picks the run (or sweep) folder before Hydra writes anything into it: a resumed run
  goes back into its own folder, an automatically named folder that already holds a run gets a ``_1``
  suffix, and an explicit ``hydra.run.dir=`` / ``hydra.sweep.dir=`` that holds one is refused, unless
  ``resume_sweep=true`` continues that sweep (same overrides; see :mod:`.sweep_resume`).
- :class:`SweepSummary` rewrites the sweep's ``summary.csv`` / ``summary.md`` after every job and prints
  the table at the end; a sweep with failed jobs exits with status 1 after everything else has finished.

Hydra turns an exception raised by a callback into a warning, so these callbacks exit explicitly
(``SystemExit``) where the user must be stopped.
"""

from __future__ import annotations

import datetime
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write

from lit_vision.errors import UserError
from lit_vision.runs.run_folder import (
    RESUME_RECORD_PREFIX,
    holds_previous_run,
    holds_previous_sweep,
    next_free_dir,
    run_dir_of_checkpoint,
)
from lit_vision.runs.sweep_groups import DEFAULT_ALPHA
from lit_vision.runs.sweep_resume import RESUME_KEY, check_same_sweep
from lit_vision.runs.sweep_summary import SUMMARY_MD, print_summary, write_summary
from lit_vision.utils.distributed import is_ddp_child, process_rank
from lit_vision.utils.io import write_json
from lit_vision.utils.reporting import report_user_error

log = logging.getLogger("lit_vision")


def _overridden(config: DictConfig, key: str) -> bool:
    """True when ``key`` (a ``hydra.*`` key) was set on the command line."""
    return any(str(o).split("=", 1)[0] == key for o in config.hydra.overrides.hydra)


def _set_hydra_value(config: DictConfig, dotted: str, value: Any) -> None:
    node = config.hydra
    *parents, leaf = dotted.split(".")
    for name in parents:
        node = node[name]
    with read_write(node), open_dict(node):
        node[leaf] = value


class RunDirGuard(Callback):
    """Never write a run into a folder that already holds another run (see module docstring)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if process_rank() != 0 or is_ddp_child():
            return  # other DDP ranks write into rank 0's folder on purpose
        try:
            self._choose_run_dir(config)
        except UserError as exc:
            report_user_error(exc)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if process_rank() != 0 or is_ddp_child():
            return
        HydraConfig.instance().set_config(config)
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        if config.get(RESUME_KEY, False) is True:
            try:
                self._check_resume(config, sweep_dir)
            except UserError as exc:
                report_user_error(exc)
            return
        if not holds_previous_sweep(sweep_dir):
            return
        if _overridden(config, "hydra.sweep.dir"):
            report_user_error(
                UserError(
                    f"hydra.sweep.dir={sweep_dir} already holds a sweep (multirun.yaml and job folders); "
                    "its results would be mixed with this one. Choose a new folder, or continue that sweep "
                    f"with the same command and {RESUME_KEY}=true."
                )
            )
        free = next_free_dir(sweep_dir, holds_previous_sweep)
        _set_hydra_value(config, "sweep.dir", str(free))

    @staticmethod
    def _check_resume(config: DictConfig, sweep_dir: Path) -> None:
        """``resume_sweep=true`` continues the sweep in the folder given by ``hydra.sweep.dir``."""
        if not _overridden(config, "hydra.sweep.dir"):
            raise UserError(
                f"{RESUME_KEY}=true continues a sweep in its folder: give that folder with "
                "hydra.sweep.dir=<sweep folder> (e.g. multirun/2026-01-31/12-00-00.123), the same on every rerun."
            )
        if holds_previous_sweep(sweep_dir):
            check_same_sweep(sweep_dir, [str(o) for o in config.hydra.overrides.task])
            log.info(
                "Resuming the sweep in %s: finished jobs are skipped, interrupted ones resumed.", sweep_dir
            )

    def _choose_run_dir(self, config: DictConfig) -> None:
        HydraConfig.instance().set_config(config)  # so ${hydra:...} in the folder name resolves
        explicit = _overridden(config, "hydra.run.dir")
        run_dir = Path(str(config.hydra.run.dir)).absolute()
        ckpt = config.get("ckpt_path")
        resuming = bool(ckpt) and bool(config.get("train", True))
        ckpt_run = run_dir_of_checkpoint(ckpt) if resuming else None
        if ckpt_run is not None and (
            (not explicit and config.get("resume_in_run_dir", True))
            or (explicit and run_dir.resolve() == ckpt_run)
        ):
            _set_hydra_value(config, "run.dir", str(ckpt_run))
            if config.hydra.output_subdir is not None:
                # Keep the run's original .hydra record; this session's goes into a sub-folder.
                stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
                _set_hydra_value(config, "output_subdir", f".hydra/{RESUME_RECORD_PREFIX}{stamp}")
            return
        if not holds_previous_run(run_dir):
            return
        if explicit:
            hint = (
                f" or resume it with ckpt_path={run_dir}/checkpoints/last.ckpt"
                if (run_dir / "checkpoints" / "last.ckpt").is_file()
                else ""
            )
            raise UserError(
                f"hydra.run.dir={run_dir} already holds a run (config.yaml, checkpoints/, metrics.json...), "
                f"which this run would overwrite. Choose a new folder{hint}."
            )
        _set_hydra_value(config, "run.dir", str(next_free_dir(run_dir)))


class SweepSummary(Callback):
    """Keep ``summary.csv`` / ``summary.md`` of a multirun sweep up to date; print it at the end.

    ``alpha``: the level of the t-tests that mark groups of seeds / folds within noise of the best.
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0.0 < float(alpha) < 1.0:
            raise UserError(
                f"hydra.callbacks.sweep_summary.alpha={alpha} must be a test level between 0 and 1 (e.g. 0.05)."
            )
        self.alpha = float(alpha)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        try:
            self._record_failed_job(config, job_return)
            write_summary(str(config.hydra.sweep.dir), self.alpha)
        except Exception as exc:  # the summary must never break a sweep
            log.warning("Could not update the sweep summary: %s", exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir():
            return
        jobs = write_summary(sweep_dir, self.alpha)
        if not jobs:
            return
        print_summary(sweep_dir, jobs, self.alpha)
        failed = [j for j in jobs if j.failed]  # a pruned Optuna trial stopped on purpose
        if failed:
            # Hydra turns exceptions raised by callbacks into warnings: exit explicitly (status 1).
            names = ", ".join(j.name for j in failed)
            sys.stderr.write(
                f"{len(failed)} of {len(jobs)} jobs failed (job {names}); the others completed. "
                f"Errors and results: {sweep_dir / SUMMARY_MD}\n"
            )
            raise SystemExit(1)

    @staticmethod
    def _record_failed_job(config: DictConfig, job_return: JobReturn) -> None:
        """A job that raised before writing metrics.json still gets one, with its error."""
        if job_return.status != JobStatus.FAILED:
            return
        output_dir = Path(str(config.hydra.runtime.output_dir))
        if (output_dir / "metrics.json").is_file():
            return
        exc = job_return._return_value
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip() if exc else "failed"
        write_json(output_dir / "metrics.json", {"status": "failed", "error": error})
