"""A progress bar for long dataset-preparation loops (decoding folders, converting annotations...).

Lightning's RichProgressBar covers training, validation, test and predict; DataModules use :func:`track`
for their own loops, e.g. ``for path in track(paths, "Decoding images"): ...``. It draws with rich on the
main process only (not on non-zero ranks) and can be switched off with ``LIT_VISION_PROGRESS=0``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """False on non-zero ranks and when ``LIT_VISION_PROGRESS`` is ``0``/``false``."""
    if os.environ.get("LIT_VISION_PROGRESS", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return all(os.environ.get(var, "0") == "0" for var in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def track(
    items: Iterable[T], description: str, total: int | None = None, disable: bool | None = None
) -> Iterator[T]:
    """Yield ``items`` while showing a rich progress bar (count, rate, time left) named ``description``.

    ``total`` defaults to ``len(items)``; ``disable=None`` means "enabled where :func:`progress_enabled`".
    The bar disappears when the loop ends; a line with the count and elapsed time stays.
    """
    if total is None and isinstance(items, Sized):
        total = len(items)
    if disable is None:
        disable = not progress_enabled()
    if disable:
        yield from items
        return

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
        elapsed = progress.tasks[0].elapsed or 0.0
    count = int(progress.tasks[0].completed)
    progress.console.print(f"{description}: {count} done in {elapsed:.1f}s")
