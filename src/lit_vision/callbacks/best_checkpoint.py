"""A ModelCheckpoint that also keeps ``<dirpath>/best.ckpt``: a stable name for the best checkpoint so far.

The best file's own name changes with the epoch and score (``epoch003-val_acc=0.9512.ckpt``); ``best.ckpt`` is
a relative symbolic link to it, replaced whenever a better checkpoint is written (a copy where the file system
has no symbolic links), so ``lit-evaluate ckpt=<run>/checkpoints/best.ckpt`` always means the best one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

BEST_NAME = "best.ckpt"


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint (same arguments) plus ``best.ckpt`` beside its files (global rank 0)."""

    @property
    def best_link_path(self) -> Path | None:
        """``<dirpath>/best.ckpt`` once a best checkpoint exists, else None."""
        if not self.best_model_path or self.dirpath is None:
            return None
        return Path(self.dirpath) / BEST_NAME

    @property
    def state_key(self) -> str:
        # ModelCheckpoint's key, so checkpoints written before this class existed resume with their best score.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero and filepath == self.best_model_path and self.best_link_path is not None:
            point_to(self.best_link_path, Path(filepath))


def point_to(link: Path, target: Path) -> None:
    """Make ``link`` a relative symbolic link to ``target`` (a copy if links are not possible), replacing it
    in one step: a reader never finds ``link`` missing or half-written."""
    link.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{link.name}.", suffix=".tmp", dir=link.parent)
    os.close(handle)
    os.unlink(temporary)
    try:
        try:
            os.symlink(os.path.relpath(target, link.parent), temporary)
        except OSError:  # e.g. Windows without the symlink privilege
            shutil.copyfile(target, temporary)
        os.replace(temporary, link)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
