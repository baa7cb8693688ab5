"""The exception type for user mistakes (bad data, bad config values): shown as one message, no traceback."""

from __future__ import annotations

import os
import re

# How torch's DataLoader re-raises an exception of a worker process in the main process: it builds the
# same exception type from one string, the worker's whole formatted traceback.
_WORKER_WRAPPER = re.compile(r"\ACaught (?P<name>\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def strip_worker_traceback(message: str) -> str:
    """The message a DataLoader worker raised, without the traceback torch puts in front of it.

    ``"Caught UserError in DataLoader worker process 0.\\nOriginal Traceback ...\\nlit_vision.errors.
    UserError: <message>"`` -> ``"<message>"``; any other text is returned unchanged.
    """
    match = _WORKER_WRAPPER.match(message)
    if match is None:
        return message
    # The traceback ends with "<module.path.>Name: <message>" (the message may span several lines).
    last_line = re.compile(rf"^(?:[\w.]+\.)?{match['name']}: ", re.MULTILINE)
    starts = [m.end() for m in last_line.finditer(message)]
    return message[starts[-1] :].rstrip("\n") if starts else message


def find_user_error(exc: BaseException | None) -> UserError | None:
    """The :class:`UserError` behind ``exc``: itself, or the cause it wraps (Hydra's ``instantiate`` wraps
    whatever the constructors it calls raise in an ``InstantiationException``); None if there is none."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__
    return None


class UserError(Exception):
    """A problem the user can fix: the message names the file, line, column or key, and the fix.

    Raised in a DataLoader worker, it reaches the main process with the same one-paragraph message (the
    worker's traceback is dropped unless ``HYDRA_FULL_ERROR=1`` asks for everything).
    """

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if os.environ.get("HYDRA_FULL_ERROR", "") in ("", "0"):
            text = strip_worker_traceback(text)
        super().__init__(text, *args)
