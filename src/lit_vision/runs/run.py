"""Train/test orchestration used by ``train.py``: instantiate from config, fit, test the best checkpoint,
write ``metrics.json`` and return the metric sweepers optimise.

:func:`run_task` is what the Hydra entry points call: it turns failures into what the user should see (a
one-paragraph message for :class:`~lit_vision.errors.UserError`, a resume command after Ctrl-C/SIGTERM) and,
inside a multirun sweep, marks a failed job as failed and lets the sweep go on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shlex
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_original_cwd, instantiate, to_absolute_path
from lightning.pytorch.callbacks import Callback, Checkpoint, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lit_vision.callbacks.optuna_pruning import pruned_at_epoch
from lit_vision.callbacks.safety import ExactResume, FiniteLossGuard, InterruptCheckpoint
from lit_vision.callbacks.trackers import tracker_runs
from lit_vision.config.presentation import (
    command_line_overrides,
    print_config_tree,
    save_resolved_config,
    start_summary,
)
from lit_vision.config.validation import check_discovered_data, validate_config
from lit_vision.data.contract import DiscoversData
from lit_vision.errors import UserError, find_user_error
from lit_vision.inference.checkpoint import (
    check_checkpoint_matches,
    check_data_fits_task,
    load_task_from_checkpoint,
)
from lit_vision.inference.test_step import apply_test_time
from lit_vision.inference.trust import safe_globals
from lit_vision.runs.sweep_resume import RESUME_KEY, plan_job, resume_job_from, set_aside_previous_attempt
from lit_vision.runs.tuning import tune_before_fit
from lit_vision.utils.checkpoint_io import disk_full_error, is_disk_full
from lit_vision.utils.distributed import is_ddp_child, process_rank
from lit_vision.utils.hardware import check_devices, drop_failing_nvml_check
from lit_vision.utils.io import write_json
from lit_vision.utils.metrics import to_float_dict
from lit_vision.utils.paths import require_checkpoint_file
from lit_vision.utils.reporting import SIGNAL_EXIT_CODES, quiet_known_noise, report_user_error

log = logging.getLogger("lit_vision")

# Keys a DataModule may leave null in the config and discover itself (folder of classes, image size...).
DISCOVERABLE_DATA_KEYS = ("num_classes", "in_channels", "image_size", "num_features", "num_targets")
# Metric names that are better when smaller (used when the mode is not the model's monitor_mode).
_LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error", "mape", "seconds")


class RunInterrupted(Exception):
    """Training was stopped by Ctrl-C or SIGTERM; last.ckpt and metrics.json hold the state so far."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name
        self.exit_code = SIGNAL_EXIT_CODES.get(signal_name, 1)


# ---------------------------------------------------------------------------------------------- helpers
def instantiate_dict(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a ``{name: {_target_: ...}}`` group; null entries are switched off."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node is not None and "_target_" in node]


def fill_discovered_data_keys(cfg: DictConfig, datamodule: L.LightningDataModule) -> None:
    """Copy what the DataModule discovered into ``cfg.data`` so ``${data.num_classes}`` etc. resolve."""
    missing = [k for k in DISCOVERABLE_DATA_KEYS if k in cfg.data and cfg.data[k] is None]
    if not missing:
        return
    not_applicable: set[str] = set()
    if isinstance(datamodule, DiscoversData):
        datamodule.discover()
        not_applicable = set(datamodule.not_applicable_keys)
    with open_dict(cfg):
        for key in missing:
            if key in not_applicable:
                continue  # this kind of data has no such key (a table has no image_size): it stays null
            value = getattr(datamodule, key, None)
            if value is None:
                raise UserError(
                    f"data.{key} is null and {type(datamodule).__name__} could not discover it: "
                    f"set it explicitly (data.{key}=...)."
                )
            cfg.data[key] = value


def checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The ModelCheckpoint that monitors a metric (the one whose best model is tested), if any."""
    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    monitored = [c for c in callbacks if c.monitor]
    return (monitored or callbacks or [None])[0]


def is_multirun() -> bool:
    """True inside a job of a Hydra multirun sweep (grid, Optuna, SLURM...)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def resolve_seed(seed: Any) -> int:
    """The run's seed: as configured, the launcher's for DDP children, or a fresh one for ``seed=null``."""
    if seed is not None:
        return int(seed)
    if is_ddp_child():
        env_seed = os.environ.get("PL_GLOBAL_SEED")
        if env_seed is not None:
            return int(env_seed)
    return random.SystemRandom().randrange(2**31)


TEST_CKPT_CHOICES = ("best", "last")


def validate_run_keys(cfg: DictConfig) -> None:
    """Check the top-level run keys (they have no schema); raise UserError naming the key and the fix."""
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise UserError(f"seed={seed!r} is not an integer: use e.g. seed=42, or seed=null for a fresh one.")
    for key, default in (("train", True), ("test", True), ("trust_checkpoint", False), (RESUME_KEY, False)):
        if not isinstance(cfg.get(key, default), bool):
            raise UserError(f"{key}={cfg.get(key)!r} must be true or false.")
    if cfg.get(RESUME_KEY, False) and HydraConfig.initialized() and not (is_multirun() or is_ddp_child()):
        raise UserError(
            f"{RESUME_KEY}=true continues a sweep: use it with -m (or hparams_search=...) and "
            "hydra.sweep.dir=<the sweep's folder>. A single run resumes with ckpt_path=<run>/checkpoints/last.ckpt."
        )
    test_ckpt = cfg.get("test_ckpt", "best")
    if test_ckpt not in TEST_CKPT_CHOICES:
        raise UserError(
            f"test_ckpt={test_ckpt!r} is not one of {', '.join(TEST_CKPT_CHOICES)}: best tests the checkpoint "
            "with the best monitored validation metric, last the weights at the end of training."
        )
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None:
        require_checkpoint_file(
            str(ckpt), key="ckpt_path", base=get_original_cwd() if HydraConfig.initialized() else None
        )
    if cfg.get("train", True):
        trainer = cfg.get("trainer") or {}
        for key in ("max_epochs", "max_steps", "limit_train_batches"):
            value = trainer.get(key)
            if value is not None and not isinstance(value, bool) and value == 0:
                raise UserError(
                    f"trainer.{key}=0 trains nothing, and the run would then test untrained weights: give it at "
                    "least 1, or evaluate a checkpoint with train=false ckpt_path=<file.ckpt>."
                )
    if not cfg.get("train", True):
        if ckpt is None:
            raise UserError("train=false evaluates a checkpoint: give it with ckpt_path=<file.ckpt>.")
        if not cfg.get("test", True):
            raise UserError("train=false and test=false leave nothing to do: drop one of them.")


def optimized_mode(cfg: DictConfig) -> str:
    """``max`` or ``min`` for ``cfg.optimized_metric``: the model's monitor_mode when it is the monitor."""
    name = str(cfg.get("optimized_metric") or "")
    model = cfg.get("model") or {}
    if name and name == model.get("monitor") and model.get("monitor_mode") in ("max", "min"):
        return str(model.get("monitor_mode"))
    if HydraConfig.initialized():
        direction = str(OmegaConf.select(HydraConfig.get(), "sweeper.direction", default="") or "")
        if direction.lower().startswith(("max", "min")):
            return direction.lower()[:3]
    leaf = name.rsplit("/", 1)[-1].lower()
    return "min" if any(word in leaf for word in _LOWER_IS_BETTER) else "max"


def optimized_value(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """The value of ``cfg.optimized_metric``: the best checkpoint's score when it is the monitored metric."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name == cfg.model.get("monitor") and "best_model_score" in metrics:
        return metrics["best_model_score"]
    value = metrics.get(name)
    return None if value is None else float(value)


def drop_switched_off_callbacks(callbacks: list[Callback], trainer_cfg: Any) -> list[Callback]:
    """Leave out the callbacks a Trainer switch turns off: ``enable_progress_bar=false`` drops progress bars,
    ``enable_checkpointing=false`` checkpoint callbacks (Lightning refuses either combination otherwise)."""
    switches = ((ProgressBar, "enable_progress_bar"), (Checkpoint, "enable_checkpointing"))
    off = tuple(kind for kind, key in switches if (trainer_cfg or {}).get(key) is False)
    return [c for c in callbacks if not isinstance(c, off)] if off else callbacks


def safety_callbacks(callbacks: list[Callback], checkpoint_dir: Path) -> InterruptCheckpoint:
    """Add the run-safety callbacks (unless configured already); return the interrupt checkpoint."""
    if not any(isinstance(c, FiniteLossGuard) for c in callbacks):
        callbacks.append(FiniteLossGuard())
    if not any(isinstance(c, ExactResume) for c in callbacks):
        callbacks.append(ExactResume())
    interrupt = next((c for c in callbacks if isinstance(c, InterruptCheckpoint)), None)
    if interrupt is None:
        interrupt = InterruptCheckpoint(dirpath=checkpoint_dir, filename="last")
        callbacks.append(interrupt)
    return interrupt


# Set in this process by Lightning's DDP launcher when it starts the other ranks of a job.
_DDP_LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@contextlib.contextmanager
def ddp_job_scope(trainer: L.Trainer) -> Iterator[None]:
    """Inside a sweep, keep Lightning's script-relaunching DDP to *this* job.

    The launcher re-runs ``sys.argv`` with ``hydra.run.dir=<HydraConfig run.dir>``; in a multirun that
    would start the whole sweep again. While the job trains and tests, argv becomes this job's overrides
    (as a single run) and run.dir this job's folder; afterwards the process group and the launcher's
    environment variables are cleared, so the next job starts its own processes.
    """
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    if not (is_multirun() and isinstance(launcher, _SubprocessScriptLauncher)):
        yield
        return
    hydra_cfg = HydraConfig.get()
    saved_argv, saved_dir = list(sys.argv), hydra_cfg.run.dir
    saved_env = {name: os.environ.get(name) for name in _DDP_LAUNCH_ENV}
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task, "hydra.mode=RUN"]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = saved_argv
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = saved_dir
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def resume_command(ckpt_path: Path) -> str:
    """The command that continues this run (its overrides come along from the run folder)."""
    return f"python train.py ckpt_path={shlex.quote(str(ckpt_path))}"


def _progress(trainer: L.Trainer | None) -> dict[str, Any]:
    if trainer is None:
        return {}
    out: dict[str, Any] = to_float_dict(trainer.callback_metrics)
    out.update(epochs=trainer.current_epoch, global_step=trainer.global_step)
    return out


def _read_metrics(output_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((output_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, UserError) else f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------------------------- the run
def train(cfg: DictConfig) -> tuple[dict[str, Any], float | None]:
    """Run one experiment described by ``cfg``; return ``(metrics, value of cfg.optimized_metric)``.

    ``metrics.json`` is written at the end, and also when the run fails or is interrupted (``status`` says
    which, with the metrics so far), by the global-rank-0 process only.
    """
    quiet_known_noise()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rank_zero = process_rank() == 0
    metrics: dict[str, Any] = {"status": "running", "output_dir": str(output_dir)}
    previous = _read_metrics(output_dir)  # a resumed run's earlier session, kept if this one fails early
    trainer: L.Trainer | None = None
    interrupt: InterruptCheckpoint | None = None
    try:
        validate_run_keys(cfg)
        validate_config(cfg)
        trainer_cfg = cfg.get("trainer") or {}
        check_devices(trainer_cfg.get("accelerator", "auto"), trainer_cfg.get("devices", "auto"))
        drop_failing_nvml_check()  # a failing NVML dlopen per optimizer step otherwise (utils.hardware)
        seed = resolve_seed(cfg.get("seed"))
        L.seed_everything(seed, workers=True, verbose=False)
        if cfg.get("torch_threads"):
            # tiny nets (tabular MLPs) run several times faster on one intra-op thread than on many
            torch.set_num_threads(int(cfg.torch_threads))
        ckpt_path = cfg.get("ckpt_path")
        with open_dict(cfg):
            cfg.seed = seed
            if ckpt_path is not None and HydraConfig.initialized():
                cfg.ckpt_path = ckpt_path = to_absolute_path(str(ckpt_path))
        metrics["seed"] = seed
        do_train = bool(cfg.get("train", True))

        datamodule: L.LightningDataModule = instantiate(cfg.data)
        fill_discovered_data_keys(cfg, datamodule)
        check_discovered_data(cfg)
        if rank_zero:
            resumed_here = ckpt_path is not None and Path(ckpt_path).is_relative_to(output_dir)
            if not (resumed_here and (output_dir / "config.yaml").exists()):
                save_resolved_config(cfg, output_dir / "config.yaml")
            if cfg.get("print_config", False):
                print_config_tree(cfg)
            log.info("%s", start_summary(command_line_overrides(), output_dir / "config.yaml"))

        task: L.LightningModule
        if do_train:
            task = instantiate(cfg.model)
            if ckpt_path is not None:
                check_checkpoint_matches(task, ckpt_path, bool(cfg.get("trust_checkpoint")))
                log.info("Resuming from %s", ckpt_path)
        else:
            task = load_task_from_checkpoint(ckpt_path, cfg.get("model"), bool(cfg.get("trust_checkpoint")))
            check_data_fits_task(task, datamodule, ckpt_path)
            log.info("Evaluating %s", ckpt_path)
        if do_train:  # tune=lr_find / tune=batch_size: Lightning's Tuner, before the run's own trainer exists
            tune_before_fit(cfg, task, datamodule, output_dir, resuming=ckpt_path is not None)
        callbacks: list[Callback] = drop_switched_off_callbacks(
            instantiate_dict(cfg.get("callbacks")), cfg.get("trainer")
        )
        interrupt = safety_callbacks(callbacks, output_dir / "checkpoints")
        loggers: list[Logger] = instantiate_dict(cfg.get("logger"))
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

        with ddp_job_scope(trainer), tracker_runs(loggers):  # MLflow / W&B runs end with the run
            _fit_and_test(cfg, trainer, task, datamodule, ckpt_path, metrics)
        metrics["status"] = "pruned" if "pruned_at_epoch" in metrics else "completed"
    except BaseException as exc:
        signal_name = interrupt.reason if interrupt is not None else None
        if signal_name is None and isinstance(exc, KeyboardInterrupt):
            signal_name = "SIGINT"
        elif signal_name is None and isinstance(exc, SIGTERMException):
            signal_name = "SIGTERM"
        progress = _progress(trainer)
        if previous and progress.get("global_step", 0) <= previous.get("global_step", 0):
            metrics = {**previous, **{k: metrics[k] for k in ("seed", "output_dir") if k in metrics}}
        else:
            metrics.update(progress)
        metrics["status"] = "interrupted" if signal_name else "failed"
        metrics["error"] = (
            f"interrupted by {signal_name}" if signal_name else _one_line(find_user_error(exc) or exc)
        )
        try:
            _finish_metrics(cfg, metrics, output_dir, rank_zero)
        except OSError as write_error:  # e.g. the full disk that stopped the run: report the first error
            log.error("metrics.json could not be written: %s", write_error)
        if signal_name:
            raise RunInterrupted(_interrupt_message(signal_name, trainer, interrupt), signal_name) from exc
        raise

    value = _finish_metrics(cfg, metrics, output_dir, rank_zero)
    if rank_zero:
        names = sorted(
            p.name + ("/" if p.is_dir() else "") for p in output_dir.iterdir() if not p.name.startswith(".")
        )
        log.info("Outputs: %s (%s)", output_dir, ", ".join(names))
    return metrics, value


def _fit_and_test(
    cfg: DictConfig,
    trainer: L.Trainer,
    task: L.LightningModule,
    datamodule: L.LightningDataModule,
    ckpt_path: str | None,
    metrics: dict[str, Any],
) -> None:
    """Fit (from ``ckpt_path`` when given), then test the best checkpoint (or with ``test_ckpt=last`` the
    final weights); record everything in ``metrics``."""
    do_train, do_test = bool(cfg.get("train", True)), bool(cfg.get("test", True))
    # Checkpoints are opened with weights_only=True (tensors and plain data) unless the user trusts the file.
    weights_only = not cfg.get("trust_checkpoint", False)
    if do_train:
        start = time.perf_counter()
        with safe_globals():
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=weights_only)
        metrics["fit_seconds"] = round(time.perf_counter() - start, 3)
        metrics.update(_progress(trainer))
        pruned = pruned_at_epoch(trainer)
        if pruned is not None:  # the Optuna pruner stopped this trial: its test score would not be used
            metrics["pruned_at_epoch"] = pruned
            do_test = False
            log.info("Optuna pruned this trial after epoch %d; it is not tested.", pruned)

    best = checkpoint_callback(trainer)
    best_path = best.best_model_path if best is not None and do_train else ""
    if best is not None and best.best_model_score is not None and do_train:
        metrics["best_model_score"] = float(best.best_model_score)
    metrics["best_model_path"] = best_path or None
    link = getattr(best, "best_link_path", None) if do_train else None
    if link is not None and link.exists():
        # checkpoints/best.ckpt: a stable name, relative to the run folder (this file's folder) when inside it
        output_dir = Path(cfg.paths.output_dir).absolute()
        link = link.absolute()
        metrics["best_ckpt"] = str(link.relative_to(output_dir) if link.is_relative_to(output_dir) else link)

    if do_test:
        tested = best_path
        if do_train and cfg.get("test_ckpt", "best") == "last":
            tested = ""  # the weights in memory are the last ones
            log.info("Testing the weights at the end of training (test_ckpt=last).")
        elif do_train and not best_path:
            log.warning("No best checkpoint was written; testing the weights at the end of training.")
        metrics["tested_weights"] = tested or ("last" if do_train else cfg.get("ckpt_path"))
        test_time = apply_test_time(cfg.get("test_time"), task, datamodule)  # TTA / tiling (conf/train.yaml)
        if test_time is not None:
            metrics["test_time"] = test_time
        start = time.perf_counter()
        with safe_globals():
            results = trainer.test(
                task, datamodule=datamodule, ckpt_path=tested or None, weights_only=weights_only
            )
        metrics["test_seconds"] = round(time.perf_counter() - start, 3)
        for result in results:
            metrics.update(to_float_dict(result))


def _finish_metrics(
    cfg: DictConfig, metrics: dict[str, Any], output_dir: Path, rank_zero: bool
) -> float | None:
    """Add the optimised metric (name, mode, value) and write metrics.json from rank 0."""
    value = optimized_value(cfg, metrics) if metrics.get("status") in ("completed", "pruned") else None
    if cfg.get("optimized_metric"):
        metrics.update(
            optimized_metric=str(cfg.optimized_metric),
            optimized_mode=optimized_mode(cfg),
            optimized_value=value,
        )
    if rank_zero:
        write_json(output_dir / "metrics.json", metrics)
    return value


def _interrupt_message(
    signal_name: str, trainer: L.Trainer | None, interrupt: InterruptCheckpoint | None
) -> str:
    where = (
        f" at epoch {trainer.current_epoch}, global step {trainer.global_step}" if trainer is not None else ""
    )
    if interrupt is not None and interrupt.saved:
        ckpt = Path(interrupt.ckpt_path).absolute()
        return (
            f"Training was interrupted by {signal_name}{where}. Its state is saved in {ckpt} (metrics so far in "
            f"metrics.json). Resume with:\n  {resume_command(ckpt)}"
        )
    if interrupt is not None and interrupt.forced:
        return (
            f"Training was stopped at once by a second Ctrl-C{where}; that state was not saved. The checkpoints "
            f"written before are kept in {Path(interrupt.dirpath).absolute()}."
        )
    if trainer is not None and interrupt is not None and trainer.state.fn == TrainerFn.TESTING:
        return (
            f"The run was interrupted by {signal_name} while testing, after training; the checkpoints are kept "
            f"in {Path(interrupt.dirpath).absolute()} (test one with train=false ckpt_path=<file>)."
        )
    return f"The run was interrupted by {signal_name}{where} before training started; nothing to resume."


def _written_path(exc: BaseException) -> str | None:
    """The file an ``OSError`` (or the error it caused) names, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.filename:
            return str(exc.filename)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def failed_value(cfg: DictConfig) -> float:
    """What a failed job reports to the sweeper: the worst possible value, so a search moves away from it."""
    return -math.inf if optimized_mode(cfg) == "max" else math.inf


def run_task(cfg: DictConfig) -> float | None:
    """The Hydra task function of ``train.py``: :func:`train`, with failures reported as a user expects.

    - Ctrl-C / SIGTERM: the resume command, exit status 130 / 143 (a sweep stops too).
    - In a multirun job: any error is logged (with its traceback unless it is a UserError), the job is marked
      failed in metrics.json and the sweep summary, and the sweep goes on.
    - In a job of a sweep rerun with ``resume_sweep=true``: a finished job is skipped, an interrupted one
      resumed from its last.ckpt, a failed one run again (:mod:`lit_vision.runs.sweep_resume`).
    - In a single run: a UserError is one paragraph on stderr, exit status 2; other errors get Hydra's
      report. ``HYDRA_FULL_ERROR=1`` shows every traceback.
    """
    try:
        if is_multirun() and cfg.get(RESUME_KEY, False) is True:
            plan = plan_job(Path(cfg.paths.output_dir))
            log.info("Resumed sweep, job %s: %s.", Path(cfg.paths.output_dir).name, plan.reason)
            if plan.action == "skip":
                return plan.value
            if plan.action == "resume":
                with open_dict(cfg):
                    cfg.ckpt_path = str(plan.ckpt_path)
                resume_job_from(plan.ckpt_path)
            elif (moved := set_aside_previous_attempt(cfg.paths.output_dir)) is not None:
                log.info("The previous attempt's files are kept in %s.", moved)
        return train(cfg)[1]
    except RunInterrupted as exc:
        log.warning("%s", exc)
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        user_error = find_user_error(exc)  # also when a constructor called by instantiate raised it
        if user_error is None and is_disk_full(exc):
            user_error = disk_full_error(_written_path(exc) or cfg.paths.output_dir, "into")
        if is_multirun():
            if user_error is not None:
                log.error("Job failed: %s", user_error)
            else:
                log.error("Job failed: %s\n%s", _one_line(exc), traceback.format_exc())
            return failed_value(cfg)
        if user_error is not None:
            report_user_error(user_error)
        raise
