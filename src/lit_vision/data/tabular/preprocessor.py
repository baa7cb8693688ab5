"""The preprocessing of table rows that travels with a model: fitted on the training split, stored in the
checkpoint's ``data_info`` as a plain JSON-able dict (:meth:`TabularPreprocessor.to_info`), so prediction
prepares new rows exactly like training did (:meth:`TabularPreprocessor.from_info`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lit_vision.data.tabular.csv_io import describe_rows, numeric_column, parse_dates, require_columns
from lit_vision.errors import UserError

UNKNOWN_POLICIES = ("error", "ignore")


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
                    f"which the training rows do not have (known: {values}). Correct the value, or train "
                    f"with it listed in data.categories.{column}, or with data.unknown_category=ignore (an "
                    "unseen category then becomes an all-zero one-hot)."
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
