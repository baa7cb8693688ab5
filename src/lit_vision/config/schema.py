# ruff: noqa: UP007, UP045  (OmegaConf reads these annotations: it needs typing.Union / Optional)
"""Typed config schemas and run-level OmegaConf resolvers, registered when ``lit_vision`` is imported.

``trainer/schema`` is a structured config of ``lightning.pytorch.Trainer``'s own signature: every Trainer
argument with its type and Lightning's default (a test keeps it equal to the installed Lightning).
``conf/trainer/default.yaml`` builds on it, so ``trainer.max_epochs=abc`` or ``trainer.max_epoch=3`` is
rejected by Hydra with its usual short message before anything runs, and every Trainer argument is a plain
override (no ``+`` needed).
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import types
import typing
from typing import Any, Literal, Optional, Union

from omegaconf import OmegaConf

# Passed by lit_vision.runs.run itself (from the callbacks/ and logger/ groups), never through trainer.*.
TRAINER_ARGS_FROM_RUN = ("callbacks", "logger")
_PRIMITIVES = (bool, int, float, str)


def _config_type(annotation: Any) -> Any:
    """An OmegaConf-supported type for a Trainer argument annotation (``Any`` when it has no equivalent)."""
    if annotation is inspect.Parameter.empty:
        return Any
    origin = typing.get_origin(annotation)
    if annotation in _PRIMITIVES:
        return annotation
    if origin is Literal:
        kinds = {type(v) for v in typing.get_args(annotation)}
        return _union(kinds)
    if origin in (Union, types.UnionType):
        optional = False
        kinds: set[Any] = set()
        for arg in typing.get_args(annotation):
            if arg is type(None):
                optional = True
                continue
            inner = _config_type(arg)
            if inner is Any:
                return Any
            kinds.update(typing.get_args(inner) if typing.get_origin(inner) is Union else {inner})
        base = _union(kinds)
        return Optional[base] if optional and base is not Any else base
    return Any


def _union(kinds: set[Any]) -> Any:
    if not kinds or not all(k in _PRIMITIVES for k in kinds):
        return Any
    ordered = tuple(k for k in _PRIMITIVES if k in kinds)  # bool before int: True stays a bool
    return ordered[0] if len(ordered) == 1 else Union[ordered]


def trainer_fields_from_lightning() -> dict[str, tuple[Any, Any]]:
    """``{argument: (config type, default)}`` derived from the installed ``Trainer.__init__`` signature.

    :class:`TrainerConfig` spells these out (so importing lit_vision stays light); a test checks that the two
    agree, so a Lightning upgrade that adds or changes an argument is noticed.
    """
    from lightning.pytorch import Trainer

    fields: dict[str, tuple[Any, Any]] = {}
    for name, param in inspect.signature(Trainer.__init__).parameters.items():
        if name == "self" or name in TRAINER_ARGS_FROM_RUN:
            continue
        default = param.default if param.default is not inspect.Parameter.empty else None
        kind = _config_type(param.annotation)
        if not isinstance(default, (*_PRIMITIVES, type(None))):
            default, kind = None, Any
        if default is None and kind is not Any:
            kind = Optional[kind]
        fields[name] = (kind, default)
    return fields


@dataclasses.dataclass
class TrainerConfig:
    """Every ``lightning.pytorch.Trainer`` argument (except callbacks/logger) with its type and default."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: Any = "auto"
    strategy: Any = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    precision: Optional[Union[int, str]] = None
    fast_dev_run: Union[bool, int] = False
    max_epochs: Optional[int] = None
    min_epochs: Optional[int] = None
    max_steps: int = -1
    min_steps: Optional[int] = None
    max_time: Any = None
    limit_train_batches: Optional[Union[int, float]] = None
    limit_val_batches: Optional[Union[int, float]] = None
    limit_test_batches: Optional[Union[int, float]] = None
    limit_predict_batches: Optional[Union[int, float]] = None
    overfit_batches: Union[int, float] = 0.0
    val_check_interval: Any = None
    check_val_every_n_epoch: Optional[int] = 1
    num_sanity_val_steps: Optional[int] = None
    log_every_n_steps: Optional[int] = None
    enable_checkpointing: Optional[bool] = None
    enable_progress_bar: Optional[bool] = None
    enable_model_summary: Optional[bool] = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: Optional[Union[int, float]] = None
    gradient_clip_algorithm: Optional[str] = None
    deterministic: Optional[Union[bool, str]] = None
    benchmark: Optional[bool] = None
    inference_mode: bool = True
    use_distributed_sampler: bool = True
    profiler: Any = None
    detect_anomaly: bool = False
    barebones: bool = False
    plugins: Any = None
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    default_root_dir: Any = None
    enable_autolog_hparams: bool = True
    model_registry: Optional[str] = None


def optuna_direction(mode: str) -> str:
    """``max``/``min`` (a task's ``monitor_mode``) -> Optuna's ``maximize``/``minimize``."""
    mode = str(mode).lower()
    if mode in ("max", "maximize"):
        return "maximize"
    if mode in ("min", "minimize"):
        return "minimize"
    raise ValueError(f"monitor_mode must be 'max' or 'min', got {mode!r}")


def _now_ms() -> str:
    """Milliseconds of the current time (three digits): run folders are unique below one second."""
    return f"{datetime.datetime.now().microsecond // 1000:03d}"


# Overrides left out of a sweep job's label: how it was launched, and values that are paths.
_LABEL_SKIPPED = ("hydra", "ckpt_path", "hparams_search", "paths", "resume_in_run_dir")
_LABEL_MAX_CHARS = 120


def sweep_job_label() -> str:
    """``${sweep_job_label:}``: in a multirun job, its overrides as one folder-safe name
    (``optim.lr=0.1,data.batch_size=32``); outside a sweep, an empty string."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return ""
    parts = []
    for override in hydra_cfg.overrides.task:
        key, _, value = str(override).lstrip("+~").partition("=")
        if key.split(".")[0] in _LABEL_SKIPPED or "/" in value or "\\" in value:
            continue
        parts.append(f"{key}={value}")
    num = OmegaConf.select(hydra_cfg, "job.num", default=None, throw_on_missing=False)
    label = ",".join(parts).replace("/", "_") or ("" if num is None else f"job{num}")
    if len(label) > _LABEL_MAX_CHARS:
        label = label[: _LABEL_MAX_CHARS - 3] + "..."
    return label


def register_configs() -> None:
    """Register the schemas in Hydra's ConfigStore and the run-level resolvers (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="trainer", name="schema", node=TrainerConfig, provider="lit_vision")
    if not OmegaConf.has_resolver("optuna_direction"):
        OmegaConf.register_new_resolver("optuna_direction", optuna_direction)
    if not OmegaConf.has_resolver("sweep_job_label"):
        OmegaConf.register_new_resolver("sweep_job_label", sweep_job_label)
    if not OmegaConf.has_resolver("now_ms"):
        OmegaConf.register_new_resolver("now_ms", _now_ms, use_cache=True)
