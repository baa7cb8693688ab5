"""The groups of a sweep as a PNG: mean ± std of the optimised metric per group, each run as a dot."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from lit_vision.runs.sweep_groups import BEST, TIE, WORSE, Group
from lit_vision.utils.io import atomic_write

COLORS = {BEST: "tab:green", TIE: "tab:blue", WORSE: "tab:gray"}


def plot_groups(groups: list[Group], metric: str, alpha: float, path: str | Path) -> Path:
    """Write a horizontal error-bar chart of ``groups`` (best at the top) to ``path``; returns it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [g for g in groups if g.stats()[2]]
    figure = Figure(figsize=(7.5, 1.2 + 0.45 * len(shown)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for row, group in enumerate(shown):
        mean, std, _ = group.stats()
        color = COLORS.get(group.verdict, "tab:orange")
        y = len(shown) - 1 - row
        axes.errorbar(mean, y, xerr=0 if np.isnan(std) else std, fmt="o", color=color, capsize=4, ms=7)
        jitter = np.linspace(-0.12, 0.12, len(group.values)) if len(group.values) > 1 else [0.0]
        axes.scatter(group.values, y + np.asarray(jitter), s=12, color=color, alpha=0.5, zorder=3)
    axes.set_yticks(range(len(shown)))
    axes.set_yticklabels(
        [f"{_short(g.label)}  (n={g.stats()[2]}, {g.verdict})" for g in reversed(shown)], fontsize=8
    )
    axes.set_xlabel(f"{metric}: mean ± std, dots = runs")
    axes.set_title(
        f"Groups vs the best (t-test at {alpha:g}): green best, blue within noise, grey worse", fontsize=9
    )
    axes.grid(axis="x", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()), binary=True)


def _short(label: str, limit: int = 48) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
