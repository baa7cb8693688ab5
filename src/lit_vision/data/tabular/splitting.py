"""Assigning a table's rows to the train / val / test splits.

In order of precedence: a ``split_column`` naming each row's split (train/val/test); a separate test
table; a pandas ``test_query`` (e.g. ``year == 2015``); else a seeded random ``test_fraction``.
Validation rows come from ``val_query`` or a seeded random ``val_fraction`` (of the whole table) of what
is left. With ``num_folds`` the train and val rows are then re-cut into k folds (grouped by
``fold_group`` when given) and fold ``fold`` validates; the test rows never change. Every split keeps the table's index, so errors can still name the file's lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lit_vision.data.splits import fold_indices, split_indices
from lit_vision.data.tabular.csv_io import describe_rows
from lit_vision.errors import UserError

STAGES = ("train", "val", "test")


@dataclass(frozen=True)
class SplitRule:
    """How rows are split (the ``data.*`` keys of the same names; ``seed`` is ``data.split_seed``)."""

    split_column: str | None = None
    test_query: str | None = None
    val_query: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    num_folds: int | None = None
    fold: int = 0
    fold_group: str | None = None

    def describe(self, test_file: bool = False) -> str:
        """How the rows are split, in words (for the log); ``test_file``: a separate test table is given."""
        if self.split_column is not None:
            test_from_file = ", test from data.test_path" if test_file else ""
            return f"splits from column {self.split_column!r}{test_from_file}"
        if test_file:
            test = "test from data.test_path"
        elif self.test_query:
            test = f"test where {self.test_query}"
        else:
            test = f"random test {self.test_fraction:.0%}"
        val = f"val where {self.val_query}" if self.val_query else f"random val {self.val_fraction:.0%}"
        if self.num_folds is not None:
            grouped = f" grouped by {self.fold_group!r}" if self.fold_group else ""
            val = f"val = fold {self.fold} of {self.num_folds} over train+val{grouped}"
        return f"{test}, {val} (split seed {self.seed})"


def split_table(
    table: pd.DataFrame, test_table: pd.DataFrame | None, rule: SplitRule, source: str
) -> dict[str, pd.DataFrame]:
    """``{"train", "val", "test"}`` row subsets of ``table`` (``test_table`` is the test split when given);
    UserError naming ``source`` for a bad split column or query, or an empty split."""
    if rule.split_column is not None:
        labels = table[rule.split_column].astype(str).str.strip().str.lower()
        labels = labels.replace({"valid": "val", "validation": "val"})
        unknown = ~labels.isin(STAGES)
        if unknown.any():
            raise UserError(
                f"{source}: column {rule.split_column!r} (data.split_column) must say train, val or test; "
                f"found {table[rule.split_column][unknown].iloc[0]!r} at {describe_rows(table, unknown)}."
            )
        frames = {stage: table[labels == stage] for stage in STAGES}
        if test_table is not None:
            frames["test"] = test_table
        return _check_sizes(_fold(frames, rule, source), source)
    if test_table is not None:
        rest, test = table, test_table
    elif rule.test_query:
        chosen = _query(table, rule.test_query, "data.test_query", source)
        rest, test = table[~chosen], table[chosen]
    else:
        rest, test = _random_split(table, rule.test_fraction, rule.seed * 2)
    if rule.val_query:
        chosen = _query(rest, rule.val_query, "data.val_query", source)
        train, val = rest[~chosen], rest[chosen]
    else:
        # val_fraction is of the whole table: scale it to what the random test split left
        test_share = 0.0 if test_table is not None or rule.test_query else rule.test_fraction
        train, val = _random_split(rest, rule.val_fraction / max(1e-12, 1 - test_share), rule.seed * 2 + 1)
    return _check_sizes(_fold({"train": train, "val": val, "test": test}, rule, source), source)


def _fold(frames: dict[str, pd.DataFrame], rule: SplitRule, source: str) -> dict[str, pd.DataFrame]:
    """Train and val re-cut from their rows (in table order) by the rule's fold; test unchanged."""
    if rule.num_folds is None:
        return frames
    pool = pd.concat([frames["train"], frames["val"]])
    groups = None
    if rule.fold_group is not None:
        if rule.fold_group not in pool.columns:
            raise UserError(
                f"{source}: data.fold_group={rule.fold_group!r} is not a column; name one of "
                f"{', '.join(map(str, pool.columns))} (rows with the same value stay in one fold), or null."
            )
        groups = pool[rule.fold_group].astype(str).to_numpy()
    train, val = fold_indices(len(pool), rule.num_folds, rule.fold, rule.seed, groups=groups, what="rows")
    return {**frames, "train": pool.iloc[train], "val": pool.iloc[val]}


def _random_split(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    fraction = min(max(fraction, 0.0), 1.0)
    keep, take = split_indices(len(frame), [1.0 - fraction, fraction], seed)
    return frame.iloc[keep], frame.iloc[take]


def _query(frame: pd.DataFrame, query: str, key: str, source: str) -> np.ndarray:
    try:
        selected = frame.eval(query)
    except Exception as exc:
        raise UserError(
            f"{key}={query!r} cannot be evaluated on {source}: {exc}. Write a pandas "
            f"DataFrame.query expression over its columns ({', '.join(map(str, frame.columns))})."
        ) from None
    selected = np.asarray(selected)
    if selected.dtype != bool or selected.shape != (len(frame),):
        raise UserError(f"{key}={query!r} does not give true/false per row (e.g. write `year == 2015`).")
    return selected


def _check_sizes(frames: dict[str, pd.DataFrame], source: str) -> dict[str, pd.DataFrame]:
    for stage in STAGES:
        if len(frames[stage]) == 0:
            raise UserError(
                f"{source}: the {stage} split has no rows "
                f"({', '.join(f'{k} {len(v)}' for k, v in frames.items())}). Check data.test_query / "
                "data.val_query / data.split_column, or the split fractions."
            )
    return frames
