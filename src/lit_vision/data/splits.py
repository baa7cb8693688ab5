"""Seeded train/val/test splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
