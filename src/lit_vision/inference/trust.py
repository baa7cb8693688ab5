"""What a checkpoint may hold when it is opened without ``trust_checkpoint=true``.

Two ways a file could run code when it is opened are closed here:

- pickle: ``torch.load(weights_only=True)`` rebuilds only tensors, builtin containers and the types in
  :data:`SAFE_GLOBALS`; a file that refers to any other class or function is refused, naming it.
- Hydra targets: a task rebuilt from a checkpoint instantiates the ``_target_`` entries of its hyperparameters
  (net, loss...). Without trust they must name a lit_vision net/optim/task, or a torch (torchvision, smp,
  timm) module, optimizer or scheduler class: ``_target_: os.system`` in a crafted file is refused.

``trust_checkpoint=true`` (train.py, lit-evaluate, lit-predict, lit-export) lifts both, for files the user
trusts (full unpickling, as ``torch.load(weights_only=False)``).
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_vision.errors import UserError

# Types beyond torch's own allow-list (tensors, builtin containers, OrderedDict...) that lit_vision's
# checkpoints hold. None so far: every checkpoint train.py writes (classification, image folder, segmentation,
# tabular; every callback and scheduler) loads with weights_only=True as it is, because hyperparameters are
# stored as plain dicts (tasks/base.to_plain) and RNG states as lists and tensors (callbacks/safety.ExactResume).
# tests/test_inference.py guards that; add a type here only when a lit_vision checkpoint needs it.
SAFE_GLOBALS: tuple[Any, ...] = ()

TRUST_OPTION = "trust_checkpoint=true"

# Hydra targets a checkpoint may name without trust: any callable of these lit_vision packages...
TRUSTED_TARGET_PACKAGES = ("lit_vision.nets.", "lit_vision.optim.", "lit_vision.tasks.")
# ...or, from these libraries, only classes of these kinds (their constructors build objects, nothing more).
LIBRARY_TARGET_PACKAGES = ("torch.", "torchvision.", "segmentation_models_pytorch.", "timm.")
LIBRARY_TARGET_BASES: tuple[type, ...] = (
    nn.Module,
    torch.optim.Optimizer,
    torch.optim.lr_scheduler.LRScheduler,
    torch.optim.lr_scheduler.ReduceLROnPlateau,
)


class UntrustedCheckpointError(UserError):
    """A checkpoint refers to something lit_vision's own checkpoints never hold; it was not loaded."""


def _refusal(path: str | Path, what: str) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"{path} {what}, which lit_vision's own checkpoints never hold, so it was not loaded: opening it could "
        f"run code from the file. If you trust where the file comes from, load it anyway with {TRUST_OPTION}."
    )


@contextlib.contextmanager
def safe_globals() -> Iterator[None]:
    """Allow :data:`SAFE_GLOBALS` in ``torch.load(weights_only=True)`` calls made inside (also Lightning's)."""
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        yield


def unsafe_globals(path: str | Path) -> list[str]:
    """Dotted names of the classes and functions the file's pickle refers to beyond the allow-lists
    (read from the pickle's opcodes; nothing is built). Empty when it cannot be told (not a zip checkpoint)."""
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        return []
    return [name for name in names if name not in allowed]


def torch_load(path: str | Path, trust: bool = False, mmap: bool = True) -> Any:
    """``torch.load`` on the CPU (memory-mapped when the format allows); without ``trust`` with
    ``weights_only=True`` and :data:`SAFE_GLOBALS`.

    Raises :class:`UntrustedCheckpointError` naming the refused types; other errors propagate.
    """
    mmap = mmap and zipfile.is_zipfile(path)  # files of torch's legacy format cannot be memory-mapped
    if trust:
        return torch.load(str(path), map_location="cpu", weights_only=False, mmap=mmap)
    try:
        with safe_globals():
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # torch's message names only the first refused global, in several paragraphs: list them all instead
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        names = unsafe_globals(path) or ([named.group(1)] if named else [])
        if names:
            raise _refusal(path, f"refers to {', '.join(names)}") from None
        # no class or function named: not a pickle torch can read (text, a truncated file); the caller
        # reports it as unreadable, with torch's one-line reason
        reason = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        raise pickle.UnpicklingError(reason.group(1) if reason else str(exc).splitlines()[0]) from None


def check_task_class(class_path: str, path: str | Path) -> None:
    """UserError unless ``class_path`` (the checkpoint's ``task_class``) is a lit_vision task."""
    if not class_path.startswith("lit_vision.tasks."):
        raise _refusal(path, f"names {class_path} as its task class")


def check_targets(hparams: Mapping[str, Any], path: str | Path) -> None:
    """UserError unless every ``_target_`` in ``hparams`` (nested too) is one lit_vision may build untrusted."""
    for key, target in _targets(hparams, "hparams"):
        if not _allowed_target(str(target)):
            raise _refusal(path, f"asks to build {key}._target_={target}")


def _targets(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for name, item in value.items():
            if name == "_target_":
                yield key, item
            else:
                yield from _targets(item, f"{key}.{name}")
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            yield from _targets(item, f"{key}[{position}]")


def _allowed_target(target: str) -> bool:
    if target.startswith(TRUSTED_TARGET_PACKAGES):
        return True
    if not target.startswith(LIBRARY_TARGET_PACKAGES):
        return False  # checked before importing anything: naming a module must not import it
    module_name, _, attribute = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(found, type) and issubclass(found, LIBRARY_TARGET_BASES)
