"""How run-level problems reach the user: one clear paragraph, no traceback, a non-zero exit code.

``HYDRA_FULL_ERROR=1`` (Hydra's own switch) re-raises instead, so the full traceback is one variable away.
Exit codes: 1 a crash or a Hydra config error, 2 a :class:`~lit_vision.errors.UserError` (fix the input),
130 / 143 a run stopped by Ctrl-C / SIGTERM (its state is saved).
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import warnings
from typing import NoReturn

USER_ERROR_EXIT_CODE = 2
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}

log = logging.getLogger("lit_vision")

# Lightning messages that say nothing about this run (tips, notes about our own callback choices).
_NOISE_PREFIXES = (
    "💡 Tip:",
    "Trainer already configured with model summary callbacks",
    "Loading `train_dataloader` to estimate number of stepping batches",
)


def full_error_requested() -> bool:
    """True when the user asked Hydra for full tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def format_paragraphs(text: str, width: int = 100) -> str:
    """Wrap each paragraph of ``text`` to ``width`` columns without breaking paths or option names."""
    return "\n".join(
        textwrap.fill(line, width=width, break_long_words=False, break_on_hyphens=False) if line else ""
        for line in str(text).splitlines()
    )


def log_to_files(level: int, message: str) -> None:
    """Write ``message`` to the run's log files only (the console gets its own, cleaner copy)."""
    record = log.makeRecord(log.name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
            handler.handle(record)


def report_user_error(exc: BaseException, exit_code: int = USER_ERROR_EXIT_CODE) -> NoReturn:
    """Print ``exc`` as a short error paragraph on stderr (and into the log file), then exit ``exit_code``."""
    if full_error_requested():
        raise exc
    text = f"Error: {exc}"
    log_to_files(logging.ERROR, text)
    sys.stderr.write(format_paragraphs(text) + "\n(Set HYDRA_FULL_ERROR=1 for the full traceback.)\n")
    sys.stderr.flush()
    raise SystemExit(exit_code)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_NOISE_PREFIXES)


def quiet_known_noise() -> None:
    """Hide Lightning's tips and deprecation chatter that are not about the user's run (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    short_lightning_console()


class CurrentStderrHandler(logging.StreamHandler):
    """A console handler that writes to ``sys.stderr`` as it is when each message is logged.

    A plain StreamHandler keeps the stream it was created with; when that was a temporary replacement
    (a captured or redirected stderr, since closed), every later message ends in "--- Logging error ---".
    """

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the current stderr always wins
        pass


def short_lightning_console() -> None:
    """Lightning's own one-line console messages, printed once.

    Imported before logging is configured, Lightning gives its loggers a bare console handler; imported
    after Hydra configured logging (train.py imports it late, so ``--help`` and config errors answer
    without loading torch), they would print twice: through the ``lightning`` package's ``INFO:`` handler
    and through Hydra's. This sets them up as in the first case.
    """
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        if logger.propagate and not logger.handlers:
            logger.addHandler(CurrentStderrHandler())
            logger.propagate = False
