"""Reading CSV tables and checking their columns, with errors that name the file, column and lines."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lit_vision.errors import UserError

# The number of offending rows named in an error message.
MAX_REPORTED = 5


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """``"a"`` -> ``["a"]``; lists (also OmegaConf ListConfig) -> plain lists of str; None -> []."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def line_of(index: Any) -> int:
    """The CSV line of a row read with pandas' default RangeIndex (line 1 is the header)."""
    return int(index) + 2


def describe_rows(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> str:
    """``line 5, line 9 ... (and 3 more)`` for the rows where ``mask`` is true."""
    rows = list(frame.index[np.asarray(mask, dtype=bool)])
    shown = ", ".join(f"line {line_of(i)}" for i in rows[:MAX_REPORTED])
    more = f" (and {len(rows) - MAX_REPORTED} more)" if len(rows) > MAX_REPORTED else ""
    return shown + more


def read_csv(path: str | Path, role: str) -> pd.DataFrame:
    """Read a CSV with a header line; UserError naming ``role`` (e.g. ``data.path``) when it cannot be read.

    UTF-8, with or without a byte-order mark (spreadsheet exports start with one; read as plain UTF-8 it
    would become part of the first column's name). Values are only parsed, never evaluated."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{role}={path}: no such file. Give the path of a CSV file with a header line "
            "(relative paths are taken from the folder train.py runs in)."
        )
    try:
        frame = pd.read_csv(path, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{role}={path} is not a readable CSV file: {exc}. Save it as comma-separated UTF-8 text with a "
            "header line."
        ) from None
    if frame.empty:
        raise UserError(f"{role}={path} has a header but no rows.")
    check_unique_header(path, role)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def check_unique_header(path: Path, role: str) -> None:
    """UserError naming the columns that appear twice in the header line (pandas would rename the second
    ``x`` to ``x.1`` silently, and a config naming ``x`` would read the first one only)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle), [])
    names = [name.strip() for name in header]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(
            f"{role}={path}: the header names the column(s) {', '.join(repr(n) for n in repeated)} more than "
            "once. Give every column its own name in the header line."
        )


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str, key: str) -> None:
    """UserError naming the missing columns, the config key that asked for them and the columns there are."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(
            f"{source} has no column {', '.join(repr(c) for c in missing)} (asked for by {key}). "
            f"Its columns are: {', '.join(map(str, frame.columns))}. Fix the name in the config or the CSV header."
        )


def numeric_column(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """``frame[column]`` as float; UserError naming the lines whose values are not numbers."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        converted = values.astype(float)
    else:
        converted = pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype(float)
        bad = values.notna() & converted.isna()
        if bad.any():
            first = values[bad].iloc[0]
            raise UserError(
                f"{source}: column {column!r} should hold numbers but has {first!r} at {describe_rows(frame, bad)}. "
                f"Fix those values, or list the column in data.categorical (one-hot) or data.drop (unused)."
            )
    infinite = np.isinf(converted.to_numpy())
    if infinite.any():
        raise UserError(
            f"{source}: column {column!r} has an infinite value ({str(values[infinite].iloc[0])!r}) at "
            f"{describe_rows(frame, infinite)}. Replace it with a finite number or remove those rows (one "
            "infinite input or target turns the standardisation and the loss into NaN)."
        )
    return converted


def parse_dates(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray | None:
    """Dates from one column (any format pandas reads) or from ``[year, month, day]`` columns."""
    columns = list(columns)
    if not columns or any(c not in frame.columns for c in columns):
        return None
    try:
        if len(columns) == 1:
            dates = pd.to_datetime(frame[columns[0]], errors="raise")
        elif len(columns) == 3:
            parts = {
                k: pd.to_numeric(frame[c]) for k, c in zip(("year", "month", "day"), columns, strict=True)
            }
            dates = pd.to_datetime(pd.DataFrame(parts), errors="raise")
        else:
            return None
    except (ValueError, TypeError):
        return None
    return dates.to_numpy(dtype="datetime64[ns]")
