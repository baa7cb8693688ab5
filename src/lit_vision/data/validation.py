"""Shared pieces of data validation: the error for unreadable files, the ``on_bad_sample`` policy, the
log of skipped files, the note about converted image modes, and the check that a checkpoint fits the data.

Every DataModule checks its data before training (``setup``/``discover``) and reports a problem as a
:class:`~lit_vision.errors.UserError` naming the file, line, column or key and the fix. Damaged files
(a corrupt or truncated image or mask, a non-image file, an annotation that is not JSON) are
:class:`BadFileError`, the one kind of problem ``data.on_bad_sample=skip`` may leave out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lit_vision.errors import UserError

ON_BAD_SAMPLE_CHOICES = ("error", "skip")
# PIL modes that need no conversion for 3 (RGB) or 1 (grey) channels.
NATIVE_MODES = {3: frozenset({"RGB"}), 1: frozenset({"L"})}


class BadFileError(UserError):
    """A data file that cannot be used as it is: corrupt, truncated, not an image, not JSON.

    ``path`` names the file and ``reason`` says what is wrong in a few words (for the log of skipped
    files); both are None when the error was re-raised from a DataLoader worker, where only the message
    travels.
    """

    def __init__(
        self, message: object = "", path: str | Path | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.reason = reason


def check_on_bad_sample(value: Any) -> str:
    """``data.on_bad_sample`` as ``error`` or ``skip``; UserError for anything else."""
    if value not in ON_BAD_SAMPLE_CHOICES:
        raise UserError(
            f"data.on_bad_sample must be error (stop and name the damaged file) or skip (leave it out, "
            f"logged), got {value!r}."
        )
    return str(value)


class SkippedFiles:
    """What ``on_bad_sample=skip`` left out: each file is logged once with its reason, then the count."""

    def __init__(self, logger: logging.Logger | None = None, what: str = "file") -> None:
        self.logger = logger or logging.getLogger("lit_vision")
        self.what = what
        self.reasons: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.reasons)

    def __contains__(self, path: object) -> bool:
        return str(path) in self.reasons

    def add(self, path: str | Path, reason: str) -> bool:
        """Record a skipped file; log it the first time only. Returns True when it is new."""
        key = str(path)
        if key in self.reasons:
            return False
        reason = reason.removeprefix(f"{key}: ")
        self.reasons[key] = reason
        self.logger.warning(
            "Skipping unreadable %s %s (%s); %d skipped so far (data.on_bad_sample=skip).",
            self.what,
            key,
            reason,
            len(self.reasons),
        )
        return True

    def log_count(self, total: int, where: str = "") -> None:
        """One line with the number of files skipped out of ``total`` (nothing when none was)."""
        if self.reasons:
            self.logger.warning(
                "Skipped %d unreadable %s(s) of %d%s (data.on_bad_sample=skip; each is named above).",
                len(self.reasons),
                self.what,
                total,
                f" in {where}" if where else "",
            )


def converted_modes_note(modes: Iterable[str], channels: int) -> str | None:
    """A one-line note when some images are not stored with ``channels`` channels (grey, RGBA, 16-bit,
    palette, CMYK...) and will be converted when loaded; None when all are native."""
    modes = list(modes)
    converted = Counter(mode for mode in modes if mode not in NATIVE_MODES[channels])
    if not converted:
        return None
    listed = ", ".join(f"{mode}: {count}" for mode, count in converted.most_common())
    target = "RGB" if channels == 3 else "grey"
    return (
        f"{sum(converted.values())} of {len(modes)} images are not {target} ({listed}); they are converted "
        f"to {channels} channel(s) when loaded (16-bit images scaled to 8 bits, alpha dropped)."
    )


# ---------------------------------------------------------------------- a checkpoint against the data
def data_kind(info: Mapping[str, Any]) -> str | None:
    """``classification``, ``segmentation`` or ``regression`` from a ``data_info`` dict (None: unknown)."""
    if info.get("task") == "segmentation":
        return "segmentation"
    if info.get("kind") in ("tabular", "image_regression") or "target_names" in info:
        return "regression"
    if info.get("num_classes") is not None:
        return "classification"
    return None


def checkpoint_data_mismatches(
    task_kind: str | None,
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    net: Mapping[str, Any] | None = None,
) -> list[str]:
    """What differs between the data a checkpoint was trained on and the configured data, as
    ``"key: X in the checkpoint vs Y now"`` phrases (empty when they fit)."""
    problems = []
    now_kind = data_kind(current)
    if task_kind and now_kind and task_kind != now_kind:
        problems.append(f"task: a {task_kind} model vs {now_kind} data now")
    for key in ("num_classes", "in_channels"):
        before, after = saved.get(key), current.get(key)
        if before is not None and after is not None and int(before) != int(after):
            problems.append(f"{key}: {before} in the checkpoint vs {after} now")
    for key, label in (("feature_names", "input columns"), ("target_names", "targets")):
        before, after = saved.get(key), current.get(key)
        if before is not None and after is not None and list(before) != list(after):
            problems.append(f"{label} ({key}): {_short(before)} in the checkpoint vs {_short(after)} now")
    declared = (net or {}).get("image_size")
    size = current.get("image_size")
    if declared is not None and size is not None and _side(declared) != _side(size):
        problems.append(f"image_size: the net takes {declared} pixel inputs vs {size} now")
    return problems


def check_data_fits_task(task: Any, datamodule: Any, ckpt_path: str | Path) -> None:
    """UserError naming what differs when a checkpoint's task cannot run on the configured data
    (another kind of task, other classes, channels, input columns or input size)."""
    if not hasattr(datamodule, "data_info"):
        return
    try:
        from lit_vision.inference.checkpoint import task_kind

        kind = task_kind(task)
    except UserError:
        kind = None
    hparams = dict(getattr(task, "hparams", {}) or {})
    saved = dict(getattr(task, "data_info", None) or {})
    if hparams.get("num_classes") is not None:
        saved.setdefault("num_classes", hparams["num_classes"])
    problems = checkpoint_data_mismatches(kind, saved, datamodule.data_info(), hparams.get("net"))
    if problems:
        raise UserError(
            f"ckpt_path={ckpt_path} does not fit the configured data ({'; '.join(problems)}). Evaluate it on "
            "the data it was trained with (from inside its run folder, the run's own data options come "
            "along), or choose the data options that match it (data=..., data.num_classes=...)."
        )


def _short(names: Any, limit: int = 6) -> str:
    names = [str(n) for n in names]
    return "[" + ", ".join(names[:limit]) + (", ..." if len(names) > limit else "") + "]"


def _side(size: Any) -> tuple[int, int]:
    if isinstance(size, (list, tuple)):
        return (int(size[0]), int(size[-1]))
    return (int(size), int(size))
