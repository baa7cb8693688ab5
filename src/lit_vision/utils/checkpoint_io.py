"""Checkpoint writing that a kill can never leave half-done.

Lightning's ``TorchCheckpointIO`` serialises the checkpoint into memory and lets fsspec write it through a
temporary file in the *system* temp folder; when that folder is on another filesystem than the run dir
(the rule on clusters) the final move is a copy, and a kill during the copy leaves a truncated ``.ckpt``.
:class:`AtomicCheckpointIO` writes next to the target, syncs it to disk and renames it over the old file in
one step, so a reader sees either the previous checkpoint or the new one, never a partial file.

A full disk (or quota) while writing is a :class:`DiskFullError` naming the file and the free space, instead
of torch's ``inline_container.cc`` assertion: the checkpoint is serialised in memory first (as Lightning's
own writer does), so the write that fails is a plain file write with its ``errno``; the partial temporary
file is removed and every file written before stays as it was.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lit_vision.errors import UserError
from lit_vision.utils.io import atomic_write

# errno values that mean "no room": the disk is full, or the user's quota on it is used up.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class DiskFullError(UserError):
    """Writing a file failed because its disk (or the user's quota) is full."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is an ``OSError`` for a full disk or quota."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(path: str | os.PathLike, what: str = "a file") -> DiskFullError:
    """The message for a write to ``path`` that found no space left (with the space free there now)."""
    path = Path(path).absolute()
    folder = next((p for p in (path.parent, *path.parents) if p.exists()), path.parent)
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free there now"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        f"No space left on device while writing {what} {path} ({free}). Nothing written before was lost: the "
        "previous file of that name and the earlier checkpoints are kept, and the partial file was removed. "
        "Free some space (or write the runs to another disk with hydra.run.dir=...), then resume from the "
        "run's checkpoints/last.ckpt with ckpt_path=..."
    )


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
    """``torch.save(obj, path)`` through a temporary file in the same folder, fsync'ed, then renamed;
    :class:`DiskFullError` when the disk or quota is full."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        written = atomic_write(path, lambda handle: write_bytes(handle, buffer.getbuffer()), binary=True)
    except (OSError, RuntimeError) as exc:
        if is_disk_full(exc) or _torch_write_failed(exc, path):
            raise disk_full_error(path, "the checkpoint") from exc
        raise
    _fsync_dir(written.parent)
    return written


def write_bytes(handle: Any, data: memoryview) -> None:
    """Write ``data`` to an open binary file (the one place checkpoint bytes reach the disk)."""
    handle.write(data)


def _torch_write_failed(exc: BaseException, path: _PATH) -> bool:
    """torch's zip writer reports a failed write as a RuntimeError without the errno ("file write failed",
    "unexpected pos" in inline_container.cc): a full disk when the folder has (almost) no space left."""
    text = str(exc)
    if not isinstance(exc, RuntimeError) or not any(
        hint in text for hint in ("inline_container", "file write failed", "unexpected pos")
    ):
        return False
    try:
        return shutil.disk_usage(Path(path).absolute().parent).free < 64 * 2**20
    except OSError:
        return False


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
