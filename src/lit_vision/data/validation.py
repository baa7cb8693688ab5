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
from collections.abc import Iterable
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
