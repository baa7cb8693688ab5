"""Seeded train/val/test splits and k-fold cross-validation folds of the train+val part."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lit_vision.errors import UserError


def split_indices(
    n: int,
    fractions: Sequence[float],
    seed: int,
    labels: Sequence[int] | np.ndarray | None = None,
) -> list[np.ndarray]:
    """Split ``range(n)`` into len(fractions) disjoint index arrays with a seeded shuffle.

    The fractions must sum to 1 (within 1e-6). With ``labels`` the split is stratified: every class is
    divided in the same proportions, so small splits still see every class. The first part takes what
    rounding leaves over, so the parts always cover all n indices.
    """
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else _by_class(np.asarray(labels))
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for group in groups:
        group = rng.permutation(group)
        counts = [round(float(f) * len(group)) for f in fractions[1:]]
        counts.insert(0, len(group) - sum(counts))
        bounds = np.cumsum([0, *counts])
        for i in range(len(fractions)):
            parts[i].append(group[bounds[i] : bounds[i + 1]])
    return [np.sort(np.concatenate(p)) if p else np.empty(0, dtype=np.int64) for p in parts]


def _by_class(labels: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


def check_folds(num_folds: int | None, fold: int | None) -> tuple[int | None, int]:
    """``(num_folds, fold)`` as ints, or a UserError naming ``data.num_folds`` / ``data.fold``.

    ``num_folds`` null (or 0/1) turns cross-validation off; then ``fold`` must be 0 or null.
    """
    fold_value = 0 if fold is None else fold
    if num_folds in (None, 0, 1):
        if fold_value != 0:
            raise UserError(
                f"data.fold={fold} needs data.num_folds: set data.num_folds=k (k >= 2) to cut the train+val "
                "data into k folds, or leave data.fold at 0."
            )
        return None, 0
    if not _is_int(num_folds) or int(num_folds) < 2:
        raise UserError(f"data.num_folds={num_folds!r} must be a whole number >= 2 (or null for no folds).")
    if not _is_int(fold_value) or not 0 <= int(fold_value) < int(num_folds):
        raise UserError(
            f"data.fold={fold!r} is not a fold of data.num_folds={num_folds}: use 0..{int(num_folds) - 1} "
            f"(e.g. -m data.fold={','.join(str(i) for i in range(int(num_folds)))})."
        )
    return int(num_folds), int(fold_value)


def fold_indices(
    n: int,
    num_folds: int,
    fold: int,
    seed: int,
    labels: Sequence[Any] | np.ndarray | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
    what: str = "samples",
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` positions of fold ``fold`` of a seeded k-fold split of ``range(n)``.

    The k validation parts are disjoint and together cover ``range(n)``; the assignment depends only on
    ``(n, num_folds, seed, labels, groups)``, so every fold of one sweep sees the same partition.
    ``labels``: stratified (each fold keeps the class proportions); ``groups``: rows of one group stay
    in one fold (with labels as well: stratified and grouped). ``what`` names the data in errors.
    """
    # sklearn loads only when folds are asked for: it adds a second to every start-up otherwise
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    kwargs: dict[str, Any] = {"n_splits": num_folds, "shuffle": True, "random_state": seed}
    if groups is not None and labels is not None:
        splitter: Any = StratifiedGroupKFold(**kwargs)
    elif groups is not None:
        splitter = GroupKFold(**kwargs)
    elif labels is not None:
        splitter = StratifiedKFold(**kwargs)
    else:
        splitter = KFold(**kwargs)
    if groups is not None and len(set(np.asarray(groups).tolist())) < num_folds:
        raise UserError(
            f"data.num_folds={num_folds} needs at least {num_folds} groups in data.fold_group, but the "
            f"train+val {what} have {len(set(np.asarray(groups).tolist()))}; lower data.num_folds."
        )
    if n < num_folds:
        raise UserError(
            f"data.num_folds={num_folds} needs at least {num_folds} train+val {what}, but there are {n}; "
            "lower data.num_folds."
        )
    if labels is not None and groups is None:
        smallest = int(np.unique(np.asarray(labels), return_counts=True)[1].min())
        if smallest < num_folds:
            raise UserError(
                f"data.num_folds={num_folds}: the smallest class has only {smallest} train+val {what}, so "
                "some folds would validate without it; lower data.num_folds or add data of that class."
            )
    features = np.zeros((n, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's "least populated class" note, checked above
        split = list(splitter.split(features, labels, groups))
    train, val = split[fold]
    return np.sort(train), np.sort(val)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
