"""Checkpoint writing that a kill can never leave half-done.

Lightning's ``TorchCheckpointIO`` serialises the checkpoint into memory and lets fsspec write it through a
temporary file in the *system* temp folder; when that folder is on another filesystem than the run dir
(the rule on clusters) the final move is a copy, and a kill during the copy leaves a truncated ``.ckpt``.
:class:`AtomicCheckpointIO` writes next to the target, syncs it to disk and renames it over the old file in
one step, so a reader sees either the previous checkpoint or the new one, never a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_vision.utils.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with write-to-temp-then-rename saves on local paths (remote URLs unchanged)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)
        return None


def atomic_torch_save(obj: Any, path: _PATH) -> Path:
    """``torch.save(obj, path)`` through a temporary file in the same folder, fsync'ed, then renamed."""
    path = atomic_write(path, lambda handle: torch.save(obj, handle), binary=True)
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every OS or filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
