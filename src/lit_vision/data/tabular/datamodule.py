"""The DataModule of a CSV table for regression: reads the table, splits it (:mod:`.splitting`), fits
a :class:`~lit_vision.data.tabular.preprocessor.TabularPreprocessor` on the training split and serves
``(float32 inputs (N, F), float32 targets (N, T))`` batches in the targets' own units (the regression task
standardises targets for its loss when ``target_mean`` / ``target_std`` are in ``data_info``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from lit_vision.data.contract import DataInfo
from lit_vision.data.in_memory import EpochBatchSampler, TensorBatchDataset
from lit_vision.data.split_loaders import SplitDataModule
from lit_vision.data.splits import check_folds
from lit_vision.data.tabular.csv_io import as_list, describe_rows, parse_dates, read_csv, require_columns
from lit_vision.data.tabular.preprocessor import UNKNOWN_POLICIES, TabularPreprocessor
from lit_vision.data.tabular.splitting import SplitRule, split_table
from lit_vision.errors import UserError

log = logging.getLogger(__name__)

MISSING_POLICIES = ("drop", "error")


class TabularDataModule(SplitDataModule):
    """A CSV table as a regression dataset (splits: :mod:`lit_vision.data.tabular.splitting`).

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
        num_folds / fold: k-fold cross-validation: train and val rows are re-cut into ``num_folds`` folds
            and fold ``fold`` (0-based) validates; the test rows stay the same for every fold.
        fold_group: a column whose rows stay together in one fold (e.g. a site or a patient id).
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
        num_folds: int | None = None,
        fold: int = 0,
        fold_group: str | None = None,
    ) -> None:
        super().__init__()
        self.num_folds, self.fold = check_folds(num_folds, fold)
        self.fold_group = None if fold_group in (None, "") else str(fold_group)
        if self.fold_group is not None and self.num_folds is None:
            raise UserError(
                f"data.fold_group={self.fold_group!r} groups rows into folds, but data.num_folds is null; "
                "set data.num_folds=k (k >= 2) or leave data.fold_group null."
            )
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

    def split_rule(self) -> SplitRule:
        """The split settings (see :mod:`lit_vision.data.tabular.splitting`)."""
        return SplitRule(
            split_column=self.split_column,
            test_query=self.test_query,
            val_query=self.val_query,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.split_seed,
            num_folds=self.num_folds,
            fold=self.fold,
            fold_group=self.fold_group,
        )

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
        frames = split_table(table, test_table, self.split_rule(), source)
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
            "%s: %d inputs (%s), target %s; %s: %s",
            source,
            found,
            ", ".join(self.preprocessor.feature_names),
            ", ".join(self.targets),
            self.split_rule().describe(test_file=test_table is not None),
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

    def data_info(self) -> DataInfo:
        """The fitted preprocessing (see :meth:`TabularPreprocessor.to_info`), stored in checkpoints."""
        self.discover()
        assert self.preprocessor is not None
        return DataInfo.from_dict(self.preprocessor.to_info())
