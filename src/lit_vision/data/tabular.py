"""Tabular regression from a CSV file: one-hot categorical columns, standardised numeric columns.

Everything that turns a table into network inputs is fitted on the training split only and kept in
:class:`TabularPreprocessor`, whose :meth:`~TabularPreprocessor.to_info` dict travels in the checkpoint's
``data_info`` so prediction prepares new rows exactly like training did
(:meth:`TabularPreprocessor.from_info`). Batches are ``(float32 inputs (N, F), float32 targets (N, T))``
in the targets' own units; the regression task standardises targets for its loss when ``target_mean`` /
``target_std`` are in ``data_info``.

Splits, in order of precedence: a ``split_column`` naming each row's split (train/val/test); a separate
``test_path`` file; a pandas ``test_query`` (e.g. ``year == 2015``); else a seeded random ``test_fraction``.
Validation rows come from ``val_query`` or a seeded random ``val_fraction`` of what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from lit_vision.data.in_memory import EpochBatchSampler, TensorBatchDataset
from lit_vision.data.split_loaders import SplitDataModule
from lit_vision.data.splits import split_indices
from lit_vision.errors import UserError

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
MISSING_POLICIES = ("drop", "error")
UNKNOWN_POLICIES = ("error", "ignore")
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
    """Read a CSV with a header line; UserError naming ``role`` (e.g. ``data.path``) when it cannot be read."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{role}={path}: no such file. Give the path of a CSV file with a header line "
            "(relative paths are taken from the folder train.py runs in)."
        )
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{role}={path} is not a readable CSV file: {exc}") from None
    if frame.empty:
        raise UserError(f"{role}={path} has a header but no rows.")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


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


@dataclass
class TabularPreprocessor:
    """Turns table rows into network inputs: numeric columns standardised, categorical ones one-hot.

    Fitted on the training rows (:meth:`fit`) and serialisable to a JSON-able dict (:meth:`to_info`,
    :meth:`from_info`), the dict a checkpoint's ``data_info`` carries. Standardisation follows
    scikit-learn's ``StandardScaler`` (population std; a constant column is only centred).

    Attributes:
        numeric: numeric input columns, in input order.
        categorical: categorical column -> its categories, in one-hot order (after the numeric inputs).
        feature_mean / feature_std: per numeric column (0 and 1 when standardisation is off).
        targets: target columns.
        target_mean / target_std: per target, or None when targets are not standardised.
        unknown_category: ``error`` (name the row) or ``ignore`` (all-zero one-hot) for unseen categories.
    """

    numeric: list[str]
    categorical: dict[str, list[str]]
    feature_mean: list[float]
    feature_std: list[float]
    targets: list[str]
    target_mean: list[float] | None = None
    target_std: list[float] | None = None
    unknown_category: str = "error"
    date: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ fitting and (de)serialising
    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        numeric: Sequence[str],
        categorical: Sequence[str],
        targets: Sequence[str],
        source: str = "the training rows",
        standardize: bool = True,
        standardize_target: bool = True,
        categories: Mapping[str, Sequence[Any]] | None = None,
        unknown_category: str = "error",
        date: Sequence[str] = (),
    ) -> TabularPreprocessor:
        """Fit the statistics and category lists on ``frame`` (the training split)."""
        if unknown_category not in UNKNOWN_POLICIES:
            raise UserError(
                f"data.unknown_category must be one of {UNKNOWN_POLICIES}, got {unknown_category!r}"
            )
        categories = dict(categories or {})
        extra = sorted(set(categories) - set(categorical))
        if extra:
            raise UserError(
                f"data.categories names {extra}, which are not in data.categorical={list(categorical)}: "
                "list them there too (or remove their category lists)."
            )
        numbers = (
            np.column_stack([numeric_column(frame, c, source).to_numpy() for c in numeric])
            if numeric
            else None
        )
        if numbers is not None and standardize:
            mean = numbers.mean(axis=0)
            std = numbers.std(axis=0)
        else:
            mean = np.zeros(len(numeric))
            std = np.ones(len(numeric))
        std = np.where(std > 0, std, 1.0)
        cats = {}
        for column in categorical:
            given = categories.get(column)
            values = (
                [str(v) for v in given] if given is not None else sorted(frame[column].astype(str).unique())
            )
            if len(set(values)) != len(values):
                raise UserError(f"data.categories.{column} lists a category twice: {values}")
            cats[column] = values
        target_mean = target_std = None
        if standardize_target:
            values = np.column_stack([numeric_column(frame, c, source).to_numpy() for c in targets])
            target_mean = values.mean(axis=0).tolist()
            target_std = np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0).tolist()
        return cls(
            numeric=list(numeric),
            categorical=cats,
            feature_mean=[float(v) for v in mean],
            feature_std=[float(v) for v in std],
            targets=list(targets),
            target_mean=target_mean,
            target_std=target_std,
            unknown_category=unknown_category,
            date=list(date),
        )

    def to_info(self) -> dict[str, Any]:
        """The JSON-able description stored in ``data_info`` (see :meth:`from_info`)."""
        return {
            "kind": "tabular",
            "feature_names": self.feature_names,
            "numeric_columns": list(self.numeric),
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "feature_mean": list(self.feature_mean),
            "feature_std": list(self.feature_std),
            "target_names": list(self.targets),
            "target_mean": None if self.target_mean is None else list(self.target_mean),
            "target_std": None if self.target_std is None else list(self.target_std),
            "unknown_category": self.unknown_category,
            "date_columns": list(self.date),
        }

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> TabularPreprocessor:
        """Rebuild the preprocessor a checkpoint's ``data_info`` describes (UserError if it has none)."""
        if info.get("kind") != "tabular" or "numeric_columns" not in info:
            raise UserError(
                "this checkpoint's data_info does not describe tabular inputs (no numeric_columns): it was "
                "not trained on a tabular DataModule, so CSV rows cannot be prepared for it."
            )
        return cls(
            numeric=list(info["numeric_columns"]),
            categorical={k: list(v) for k, v in info.get("categorical", {}).items()},
            feature_mean=[float(v) for v in info["feature_mean"]],
            feature_std=[float(v) for v in info["feature_std"]],
            targets=list(info.get("target_names") or []),
            target_mean=info.get("target_mean"),
            target_std=info.get("target_std"),
            unknown_category=str(info.get("unknown_category", "error")),
            date=list(info.get("date_columns") or []),
        )

    # ------------------------------------------------------------------ applying
    @property
    def feature_names(self) -> list[str]:
        """Names of the network's input columns: numeric columns, then ``column=category`` one-hots."""
        return [*self.numeric, *(f"{c}={v}" for c, values in self.categorical.items() for v in values)]

    @property
    def input_columns(self) -> list[str]:
        """The table columns the inputs are computed from."""
        return [*self.numeric, *self.categorical]

    def transform(self, frame: pd.DataFrame, source: str = "the table") -> np.ndarray:
        """``frame``'s rows as float32 network inputs ``(N, F)``; UserError for a missing column, a
        non-numeric value, a missing value or (with ``unknown_category=error``) an unseen category."""
        require_columns(frame, self.input_columns, source, "the model's input columns")
        parts = []
        if self.numeric:
            numbers = np.column_stack([numeric_column(frame, c, source).to_numpy() for c in self.numeric])
            missing = np.isnan(numbers)
            if missing.any():
                rows = missing.any(axis=1)
                columns = [c for c, bad in zip(self.numeric, missing.any(axis=0), strict=True) if bad]
                raise UserError(
                    f"{source}: missing value(s) in column(s) {columns} at {describe_rows(frame, rows)}. "
                    "Fill them in or remove those rows."
                )
            parts.append((numbers - np.asarray(self.feature_mean)) / np.asarray(self.feature_std))
        for column, values in self.categorical.items():
            text = frame[column].astype("string")
            codes = pd.Index(values).get_indexer(text.fillna("").to_numpy(dtype=object))
            unknown = (codes < 0) & text.notna().to_numpy()
            absent = text.isna().to_numpy()
            if absent.any():
                raise UserError(
                    f"{source}: column {column!r} is empty at {describe_rows(frame, absent)}. "
                    "Fill it in or remove those rows."
                )
            if unknown.any() and self.unknown_category == "error":
                first = text[unknown].iloc[0]
                raise UserError(
                    f"{source}: column {column!r} has the category {first!r} at {describe_rows(frame, unknown)}, "
                    f"which the training rows do not have (known: {values}). List every category in "
                    f"data.categories.{column}, or set data.unknown_category=ignore (all-zero one-hot)."
                )
            one_hot = np.zeros((len(frame), len(values)))
            known = codes >= 0
            one_hot[np.flatnonzero(known), codes[known]] = 1.0
            parts.append(one_hot)
        if not parts:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def target_values(self, frame: pd.DataFrame, source: str = "the table") -> np.ndarray:
        """The target columns as float32 ``(N, T)`` in their own units (UserError if missing or not numbers)."""
        require_columns(frame, self.targets, source, "data.target")
        values = np.column_stack([numeric_column(frame, c, source).to_numpy() for c in self.targets])
        missing = np.isnan(values).any(axis=1)
        if missing.any():
            raise UserError(f"{source}: missing target value at {describe_rows(frame, missing)}.")
        return values.astype(np.float32)

    def dates(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Each row's date (``datetime64``) from the date column(s), or None when there are none/invalid."""
        return parse_dates(frame, self.date)


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


class TabularDataModule(SplitDataModule):
    """A CSV table as a regression dataset (see the module docstring for the splits).

    Args:
        path: the CSV file (header line, one row per sample).
        target: target column name(s).
        features: input columns; null: every column that is not a target, a dropped column, the
            split column or a single text ``date`` column.
        categorical: columns one-hot encoded (categories from the training rows, or ``categories``).
        drop: columns left out (when present).
        categories: optional ``{column: [categories...]}`` fixing the one-hot order and set.
        date: a date column, or ``[year, month, day]`` columns: used to draw actual vs predicted over time
            (the columns stay inputs when they are numbers and listed in / not excluded from features).
        missing: ``drop`` rows with an empty input or target, or ``error`` naming them.
        unknown_category: ``error`` or ``ignore`` (all-zero one-hot) for categories unseen in training.
        standardize: standardise numeric inputs with the training split's mean/std.
        standardize_target: the task trains on standardised targets (metrics stay in target units).
        test_path: a separate CSV for the test split (same columns).
        split_column: a column whose values (train/val/test) assign each row's split.
        test_query / val_query: pandas ``DataFrame.query`` expressions selecting test / validation rows.
        val_fraction / test_fraction: seeded random fractions when no file, column or query says otherwise.
        split_seed: seed of the random splits.
        batch_size / eval_batch_size: batch sizes (evaluation default: twice the training one).
        num_features / num_targets: inputs and outputs of the net; null: discovered from the file. A
            value given here is checked against the file.
        num_classes / in_channels / image_size: image keys, always null for tables (accepted so image model
            configs still compose with tabular data; listed in ``not_applicable_keys``).
    """

    # Image keys a table does not have: `run.fill_discovered_data_keys` leaves them null.
    not_applicable_keys = ("num_classes", "in_channels", "image_size")

    def __init__(
        self,
        path: str | None = None,
        target: str | Sequence[str] = "target",
        features: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        drop: Sequence[str] | None = None,
        categories: Mapping[str, Sequence[Any]] | None = None,
        date: str | Sequence[str] | None = None,
        missing: str = "drop",
        unknown_category: str = "error",
        standardize: bool = True,
        standardize_target: bool = True,
        test_path: str | None = None,
        split_column: str | None = None,
        test_query: str | None = None,
        val_query: str | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_features: int | None = None,
        num_targets: int | None = None,
        num_classes: None = None,
        in_channels: None = None,
        image_size: None = None,
    ) -> None:
        super().__init__()
        if missing not in MISSING_POLICIES:
            raise UserError(f"data.missing must be one of {MISSING_POLICIES}, got {missing!r}")
        if unknown_category not in UNKNOWN_POLICIES:
            raise UserError(
                f"data.unknown_category must be one of {UNKNOWN_POLICIES}, got {unknown_category!r}"
            )
        for key, value in (
            ("num_classes", num_classes),
            ("in_channels", in_channels),
            ("image_size", image_size),
        ):
            if value is not None:
                raise UserError(f"data.{key}={value!r}: tabular data has no {key}; leave it null.")
        self.path = None if path in (None, "") else str(path)
        self.targets = as_list(target)
        if not self.targets:
            raise UserError("data.target is empty: name the column(s) to predict.")
        self.features = None if features is None else as_list(features)
        self.categorical = as_list(categorical)
        self.drop = as_list(drop)
        self.categories = {str(k): list(v) for k, v in (categories or {}).items()}
        self.date = as_list(date)
        self.missing = missing
        self.unknown_category = unknown_category
        self.standardize = bool(standardize)
        self.standardize_target = bool(standardize_target)
        self.test_path = None if test_path in (None, "") else str(test_path)
        self.split_column = None if split_column in (None, "") else str(split_column)
        self.test_query = test_query or None
        self.val_query = val_query or None
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or 2 * self.batch_size)
        self.num_features = None if num_features is None else int(num_features)
        self.num_targets = None if num_targets is None else int(num_targets)
        self.preprocessor: TabularPreprocessor | None = None
        self.frames: dict[str, pd.DataFrame] = {}
        self.splits: dict[str, TensorBatchDataset] = {}

    # ------------------------------------------------------------------ reading (override in subclasses)
    def source_name(self) -> str:
        """How error messages name the main table."""
        return f"data.path={self.path}"

    def load_table(self) -> pd.DataFrame:
        """The main table (every split unless ``test_path`` is given)."""
        if self.path is None:
            raise UserError("data.path is null: give the CSV file to train on (data.path=my_table.csv).")
        return read_csv(self.path, "data.path")

    def load_test_table(self) -> pd.DataFrame | None:
        """The separate test table, or None."""
        return None if self.test_path is None else read_csv(self.test_path, "data.test_path")

    # ------------------------------------------------------------------ columns
    def input_columns(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        """``(numeric, categorical)`` input columns of ``frame`` (checked to exist)."""
        source = self.source_name()
        require_columns(frame, self.targets, source, "data.target")
        require_columns(frame, self.categorical, source, "data.categorical")
        if self.split_column is not None:
            require_columns(frame, [self.split_column], source, "data.split_column")
        if self.date:
            require_columns(frame, self.date, source, "data.date")
        if self.features is not None:
            require_columns(frame, self.features, source, "data.features")
            features = list(self.features)
        else:
            excluded = {*self.targets, *self.drop, self.split_column}
            if len(self.date) == 1:
                excluded.add(self.date[0])  # a text date is not an input; year/month/day columns may be
            features = [c for c in frame.columns if c not in excluded]
        both = [c for c in features if c in self.targets]
        if both:
            raise UserError(
                f"column(s) {both} are both data.target and data.features: a target cannot be an input."
            )
        numeric = [c for c in features if c not in self.categorical]
        categorical = [c for c in self.categorical if c in features or self.features is None]
        if not numeric and not categorical:
            raise UserError(
                f"{source}: no input columns are left (data.features / data.drop remove them all)."
            )
        return numeric, categorical

    def handle_missing(self, frame: pd.DataFrame, columns: Sequence[str], source: str) -> pd.DataFrame:
        """Apply the missing-value policy to ``columns`` (drop the rows, or UserError naming them)."""
        empty = frame[list(columns)].isna()
        rows = empty.any(axis=1).to_numpy()
        if not rows.any():
            return frame
        bad_columns = [c for c in columns if empty[c].any()]
        if self.missing == "error":
            raise UserError(
                f"{source}: missing value(s) in column(s) {bad_columns} at {describe_rows(frame, rows)}. "
                "Fill them in, or set data.missing=drop to leave such rows out."
            )
        log.warning(
            "%s: dropped %d row(s) with missing values in %s (%s); data.missing=error reports them instead.",
            source,
            int(rows.sum()),
            bad_columns,
            describe_rows(frame, rows),
        )
        return frame.loc[~rows]

    # ------------------------------------------------------------------ splitting
    def split_frames(self, table: pd.DataFrame, test_table: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
        """Assign rows to train/val/test (see the module docstring for the precedence)."""
        source = self.source_name()
        if self.split_column is not None:
            labels = table[self.split_column].astype(str).str.strip().str.lower()
            labels = labels.replace({"valid": "val", "validation": "val"})
            unknown = ~labels.isin(STAGES)
            if unknown.any():
                raise UserError(
                    f"{source}: column {self.split_column!r} (data.split_column) must say train, val or test; "
                    f"found {table[self.split_column][unknown].iloc[0]!r} at {describe_rows(table, unknown)}."
                )
            frames = {stage: table[labels == stage] for stage in STAGES}
            if test_table is not None:
                frames["test"] = test_table
            return self._check_split_sizes(frames)
        if test_table is not None:
            rest, test = table, test_table
        elif self.test_query:
            chosen = self._query(table, self.test_query, "data.test_query")
            rest, test = table[~chosen], table[chosen]
        else:
            rest, test = self._random_split(table, self.test_fraction, salt=0)
        if self.val_query:
            chosen = self._query(rest, self.val_query, "data.val_query")
            train, val = rest[~chosen], rest[chosen]
        else:
            train, val = self._random_split(
                rest, self.val_fraction / max(1e-12, 1 - self._test_share(test_table)), salt=1
            )
        return self._check_split_sizes({"train": train, "val": val, "test": test})

    def _test_share(self, test_table: pd.DataFrame | None) -> float:
        """The fraction of the main table the test split took (so val_fraction is of the whole table)."""
        if test_table is not None or self.test_query:
            return 0.0
        return self.test_fraction

    def _random_split(
        self, frame: pd.DataFrame, fraction: float, salt: int
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        fraction = min(max(fraction, 0.0), 1.0)
        keep, take = split_indices(len(frame), [1.0 - fraction, fraction], self.split_seed * 2 + salt)
        return frame.iloc[keep], frame.iloc[take]

    def _query(self, frame: pd.DataFrame, query: str, key: str) -> np.ndarray:
        try:
            selected = frame.eval(query)
        except Exception as exc:
            raise UserError(
                f"{key}={query!r} cannot be evaluated on {self.source_name()}: {exc}. Write a pandas "
                f"DataFrame.query expression over its columns ({', '.join(map(str, frame.columns))})."
            ) from None
        selected = np.asarray(selected)
        if selected.dtype != bool or selected.shape != (len(frame),):
            raise UserError(f"{key}={query!r} does not give true/false per row (e.g. write `year == 2015`).")
        return selected

    def _check_split_sizes(self, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        for stage in STAGES:
            if len(frames[stage]) == 0:
                raise UserError(
                    f"{self.source_name()}: the {stage} split has no rows "
                    f"({', '.join(f'{k} {len(v)}' for k, v in frames.items())}). Check data.test_query / "
                    "data.val_query / data.split_column, or the split fractions."
                )
        return frames

    # ------------------------------------------------------------------ Lightning hooks
    def discover(self) -> None:
        """Read the table and fit the preprocessing (sets ``num_features`` and ``num_targets``)."""
        if self.preprocessor is not None:
            return
        source = self.source_name()
        table = self.load_table()
        test_table = self.load_test_table()
        numeric, categorical = self.input_columns(table)
        used = [*numeric, *categorical, *self.targets]
        table = self.handle_missing(table, used, source)
        if test_table is not None:
            require_columns(
                test_table, used, f"data.test_path={self.test_path}", "the training table's columns"
            )
            test_table = self.handle_missing(test_table, used, f"data.test_path={self.test_path}")
        frames = self.split_frames(table, test_table)
        self.preprocessor = TabularPreprocessor.fit(
            frames["train"],
            numeric,
            categorical,
            self.targets,
            source=source,
            standardize=self.standardize,
            standardize_target=self.standardize_target,
            categories=self.categories,
            unknown_category=self.unknown_category,
            date=self.date,
        )
        self.frames = frames
        found = len(self.preprocessor.feature_names)
        if self.num_features is not None and self.num_features != found:
            raise UserError(
                f"data.num_features={self.num_features}, but {source} gives {found} inputs "
                f"({', '.join(self.preprocessor.feature_names)}). Set data.num_features={found}, or null "
                "to take it from the file."
            )
        if self.num_targets is not None and self.num_targets != len(self.targets):
            raise UserError(
                f"data.num_targets={self.num_targets}, but data.target names {len(self.targets)} column(s) "
                f"{self.targets}: make them agree (or set data.num_targets=null)."
            )
        self.num_features = found
        self.num_targets = len(self.targets)
        log.info(
            "%s: %d inputs (%s), target %s; %s",
            source,
            found,
            ", ".join(self.preprocessor.feature_names),
            ", ".join(self.targets),
            ", ".join(f"{k} {len(v)} rows" for k, v in frames.items()),
        )

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.discover()
        assert self.preprocessor is not None
        for name, frame in self.frames.items():
            where = (
                self.source_name()
                if name != "test" or self.test_path is None
                else f"data.test_path={self.test_path}"
            )
            inputs = torch.from_numpy(self.preprocessor.transform(frame, f"{where} ({name} split)"))
            targets = torch.from_numpy(self.preprocessor.target_values(frame, f"{where} ({name} split)"))
            self.splits[name] = TensorBatchDataset(inputs, targets)

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        if stage not in self.splits:
            self.setup(stage)
        dataset = self.splits[stage]
        batch_size = self.batch_size if stage == "train" else self.eval_batch_size
        sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=self.split_seed)
        return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=0)

    # ------------------------------------------------------------------ what others read
    def split_frame(self, stage: str) -> pd.DataFrame:
        """The rows of ``stage`` as read from the file (after the missing-value policy), in loader order."""
        self.discover()
        return self.frames[stage]

    def split_dates(self, stage: str) -> np.ndarray | None:
        """Dates of ``stage``'s rows in loader order, or None when no ``date`` is configured."""
        if not self.date:
            return None
        return parse_dates(self.split_frame(stage), self.date)

    def data_info(self) -> dict[str, Any]:
        """The fitted preprocessing (see :meth:`TabularPreprocessor.to_info`), stored in checkpoints."""
        self.discover()
        assert self.preprocessor is not None
        return self.preprocessor.to_info()
