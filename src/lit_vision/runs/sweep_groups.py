"""Repeated runs of a sweep as groups: mean ± std and n per setting, and which settings are within noise.

Jobs whose overrides differ only in a replicate key (``seed``, ``data.fold``) are one group: the same
recipe run again on another seed or validated on another fold. Each group gets the mean, the sample
standard deviation and n of the sweep's ``optimized_value`` (and of the top-level test metrics). Every
group is then compared with the best group by a two-sided t-test at level ``alpha``: a paired t-test when
both groups ran the same seeds / folds (the same fold means the same validation rows, so the differences
cancel the fold's difficulty), else Welch's unequal-variance t-test. A p-value of at least ``alpha`` means
the difference is within noise: the data do not show that the best group is better.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from lit_vision.runs.sweep_jobs import JobResult

# Overrides that repeat a recipe rather than change it.
REPLICATE_KEYS = ("seed", "data.fold")
DEFAULT_ALPHA = 0.05
BEST, TIE, WORSE, FEW = "best", "within noise", "worse", "too few runs"


@dataclass
class Group:
    """Jobs that differ only in replicate keys, and their statistics."""

    settings: dict[str, str]
    jobs: list[JobResult] = field(default_factory=list)
    test: str = ""
    p_value: float | None = None
    verdict: str = ""

    @property
    def label(self) -> str:
        """The group's own overrides, ``key=value`` joined by spaces (``all jobs`` when none differ)."""
        return " ".join(f"{k}={v}" for k, v in self.settings.items()) or "all jobs"

    @property
    def replicates(self) -> dict[tuple[str, ...], float]:
        """Replicate id (its seed / fold values) -> optimised value, for the completed jobs."""
        return {_replicate_id(job): job.value for job in self.jobs if job.value is not None}

    @property
    def values(self) -> np.ndarray:
        return np.array(list(self.replicates.values()), dtype=float)

    @property
    def failed(self) -> int:
        return sum(not job.ok for job in self.jobs)

    def stats(self, metric: str | None = None) -> tuple[float, float, int]:
        """``(mean, sample std, n)`` of ``metric`` (default: the optimised value); std is nan for n < 2."""
        if metric is None:
            values = self.values
        else:
            values = np.array(
                [float(j.metrics[metric]) for j in self.jobs if j.ok and _is_number(j.metrics.get(metric))]
            )
            values = values[np.isfinite(values)]
        n = len(values)
        if n == 0:
            return math.nan, math.nan, 0
        return float(values.mean()), float(values.std(ddof=1)) if n > 1 else math.nan, n


def replicate_keys(jobs: list[JobResult]) -> list[str]:
    """The replicate keys that take more than one value in the sweep."""
    return [k for k in REPLICATE_KEYS if len({j.overrides.get(k) for j in jobs if k in j.overrides}) > 1]


def group_jobs(jobs: list[JobResult], alpha: float = DEFAULT_ALPHA, mode: str = "max") -> list[Group]:
    """The sweep's groups, best mean first, each with its verdict against the best; ``[]`` when the sweep
    repeats nothing (no replicate key varies, or no group has two completed runs).

    ``mode``: ``max`` or ``min`` (higher or lower ``optimized_value`` is better).
    """
    repeat = replicate_keys(jobs)
    if not repeat:
        return []
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys and k not in REPLICATE_KEYS]
    varying = [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]
    groups: dict[tuple[str, ...], Group] = {}
    for job in jobs:
        settings = {k: job.overrides.get(k, "") for k in varying}
        groups.setdefault(tuple(settings.values()), Group(settings)).jobs.append(job)
    found = list(groups.values())
    if max(g.stats()[2] for g in found) < 2:
        return []
    sign = -1.0 if mode == "min" else 1.0
    scored = sorted((g for g in found if g.stats()[2]), key=lambda g: -sign * g.stats()[0])
    for group in scored:
        compare(group, scored[0], alpha)
    return scored + [g for g in found if not g.stats()[2]]


def compare(group: Group, best: Group, alpha: float) -> None:
    """Set ``group``'s test, p-value and verdict against ``best``."""
    if group is best:
        group.test, group.p_value, group.verdict = "", None, BEST
        return
    a, b = group.replicates, best.replicates
    if len(a) < 2 or len(b) < 2:
        group.test, group.p_value, group.verdict = "", None, FEW
        return
    if a.keys() == b.keys():
        pairs = sorted(a)
        group.test = "paired t"
        group.p_value = _paired_p([a[k] for k in pairs], [b[k] for k in pairs])
    else:
        group.test = "Welch t"
        group.p_value = _welch_p(list(a.values()), list(b.values()))
    group.verdict = TIE if group.p_value >= alpha else WORSE


def _paired_p(x: list[float], y: list[float]) -> float:
    from scipy import stats

    diff = np.subtract(x, y)
    if np.all(diff == diff[0]):  # no spread in the differences: the t statistic is 0/0 or infinite
        return 1.0 if diff[0] == 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(x, y).pvalue)


def _welch_p(x: list[float], y: list[float]) -> float:
    from scipy import stats

    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return 1.0 if x[0] == y[0] else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def _replicate_id(job: JobResult) -> tuple[str, ...]:
    return tuple(job.overrides.get(k, "") for k in REPLICATE_KEYS)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_mean_std(mean: float, std: float) -> str:
    """``0.8123 ± 0.0101`` (just the mean when std is undefined, empty when there is no value)."""
    if math.isnan(mean):
        return ""
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def describe_test(alpha: float) -> str:
    """The sentence the summary prints under the groups table."""
    return (
        f"Groups: jobs that differ only in {' / '.join(REPLICATE_KEYS)}; mean ± sample std over the n "
        f"completed runs. Each group is compared with the best by a two-sided t-test at level {alpha:g} "
        "(paired when both ran the same seeds / folds, else Welch's): `within noise` means p >= "
        f"{alpha:g}, the data do not show the best group is better; `worse` means p < {alpha:g}."
    )
