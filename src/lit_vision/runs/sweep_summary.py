"""The summary table of a multirun sweep: every job's overrides, status and final metrics.

Built from what the jobs leave on disk (``<job>/.hydra/overrides.yaml`` and ``<job>/metrics.json``), so it
works the same for local sweeps, Optuna studies and SLURM jobs, and for sweeps that were cut short. Jobs
are sorted by their ``optimized_metric`` (best first); failed jobs come last with their error.

When jobs repeat a recipe over ``seed`` or ``data.fold`` they are also grouped (:mod:`.sweep_groups`): the
summary then shows each group's mean ± std and n, which groups are within noise of the best, and
``summary_groups.csv`` / ``summary_groups.png``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lit_vision.runs.sweep_groups import (
    DEFAULT_ALPHA,
    TIE,
    WORSE,
    Group,
    describe_test,
    format_mean_std,
    group_jobs,
)
from lit_vision.runs.sweep_jobs import JobResult, collect_jobs
from lit_vision.runs.sweep_plot import plot_groups
from lit_vision.utils.io import atomic_write_text

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARY_GROUPS_CSV = "summary_groups.csv"
SUMMARY_GROUPS_PNG = "summary_groups.png"
OPTUNA_RESULTS = "optimization_results.yaml"
# Shown besides the optimised metric: in Markdown every top-level test metric (test/acc, not
# test/acc_class/3), on the console only the test counterpart of the optimised metric and the test loss.
# The CSV has every metric.
SHOWN_KEYS = ("epochs", "fit_seconds")


def _mode(jobs: list[JobResult]) -> str:
    """``min`` when the jobs minimise their ``optimized_metric``, else ``max``."""
    modes = {j.metrics.get("optimized_mode") for j in jobs if j.value is not None}
    return "min" if "min" in modes else "max"


def sort_jobs(jobs: list[JobResult]) -> list[JobResult]:
    """Completed jobs best first (by ``optimized_value`` and its mode), then the rest in job order."""
    descending = _mode(jobs) == "max"
    scored = [j for j in jobs if j.value is not None]
    scored.sort(key=lambda j: j.value, reverse=descending)
    completed_unscored = [j for j in jobs if j.ok and j.value is None]
    others = [j for j in jobs if not j.ok]
    return scored + completed_unscored + others


def _varying_keys(jobs: list[JobResult]) -> tuple[list[str], dict[str, str]]:
    """Override keys whose value differs between jobs, and the ones all jobs share (key -> value)."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    varying, common = [], {}
    for key in keys:
        values = {job.overrides.get(key) for job in jobs}
        if len(values) == 1 and len(jobs) > 1:
            common[key] = next(iter(values)) or ""
        else:
            varying.append(key)
    return varying, common


def _metric_name(jobs: list[JobResult]) -> str | None:
    return next((str(j.metrics["optimized_metric"]) for j in jobs if j.metrics.get("optimized_metric")), None)


def _numeric_keys(jobs: list[JobResult]) -> list[str]:
    keys: set[str] = set()
    for job in jobs:
        keys.update(
            k
            for k, v in job.metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "optimized_value"
        )
    return sorted(keys)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _short_number(text: str) -> str:
    """Sampled values such as ``0.0005143762316175359`` shown as ``0.0005144`` (the CSV keeps them whole)."""
    if len(text) <= 8 or not any(c in text for c in ".eE"):
        return text
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text


def _short_error(text: str, limit: int = 140) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _shown_metrics(numeric: list[str], metric: str | None, detail: str) -> list[str]:
    if detail == "full":
        return [k for k in numeric if k != metric]
    if detail == "compact":
        leaf = (metric or "").split("/", 1)[-1]
        wanted = [f"test/{leaf}", "test/loss", "fit_seconds"]
        return [k for k in wanted if k in numeric and k != metric]
    return [
        k
        for k in numeric
        if k != metric and ((k.startswith("test/") and k.count("/") == 1) or k in SHOWN_KEYS)
    ]


def summary_table(
    jobs: list[JobResult], detail: str = "markdown"
) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """``(columns, rows, common overrides)``.

    ``detail``: ``full`` (every numeric metric and the job folder: the CSV), ``markdown`` (top-level test
    metrics) or ``compact`` (the console).
    """
    full = detail == "full"
    jobs = sort_jobs(jobs)
    varying, common = _varying_keys(jobs)
    metric = _metric_name(jobs)
    shown = _shown_metrics(_numeric_keys(jobs), metric, detail)
    columns = ["job", "status", *varying]
    if metric:
        columns.append(metric)
    columns += [*shown, "error"]
    if full:
        columns.append("output_dir")
    rows = []
    for job in jobs:
        values = [job.overrides.get(k, "") for k in varying]
        row = [job.name, job.status, *(values if full else [_short_number(v) for v in values])]
        if metric:
            row.append(_fmt(job.value))
        row += [_fmt(job.metrics.get(k)) for k in shown]
        row.append(job.error if full else _short_error(job.error))
        if full:
            row.append(str(job.path))
        rows.append(row)
    return columns, rows, common


def sweep_groups(jobs: list[JobResult], alpha: float = DEFAULT_ALPHA) -> list[Group]:
    """The jobs grouped over ``seed`` / ``data.fold`` with verdicts (``[]`` when nothing repeats)."""
    return group_jobs(jobs, alpha, _mode(jobs))


def _group_metrics(jobs: list[JobResult], detail: str = "full") -> list[str]:
    """Besides the optimised value: every top-level test metric (``full``, the CSV), or the optimised
    metric's test counterpart and the test loss (``compact``, the Markdown table)."""
    metric = _metric_name(jobs)
    tests = [k for k in _numeric_keys(jobs) if k != metric and k.startswith("test/") and k.count("/") == 1]
    if detail == "full":
        return tests
    leaf = (metric or "").split("/", 1)[-1]
    return [k for k in (f"test/{leaf}", "test/loss") if k in tests]


def _verdict_text(group: Group) -> str:
    if group.p_value is None:
        return group.verdict
    return f"{group.verdict} (p={group.p_value:.2g}, {group.test})"


def group_markdown(jobs: list[JobResult], groups: list[Group], alpha: float) -> list[str]:
    """The groups section of ``summary.md``: one row per group, best first."""
    metric = _metric_name(jobs) or "optimized_value"
    extra = _group_metrics(jobs, "compact")
    columns = ["group", "n", f"{metric} (mean ± std)", "vs best", *(f"{k} (mean ± std)" for k in extra)]
    lines = ["## Groups", "", describe_test(alpha), ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in columns) + "|")
    for group in groups:
        mean, std, n = group.stats()
        failed = f" ({group.failed} failed)" if group.failed else ""
        row = [group.label, f"{n}{failed}", format_mean_std(mean, std), _verdict_text(group)]
        row += [format_mean_std(*group.stats(k)[:2]) for k in extra]
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    if len(groups) > 1:
        lines += ["", _verdict_sentence(groups, alpha)]
    return [*lines, "", "## Jobs", ""]


def _verdict_sentence(groups: list[Group], alpha: float) -> str:
    """One line under the groups table: which groups tie with the best."""
    best = f"`{groups[0].label}`"
    ties = [f"`{g.label}`" for g in groups[1:] if g.verdict == TIE]
    if ties:
        return f"Within noise of the best ({best}) at level {alpha:g}: {', '.join(ties)}."
    if all(g.verdict == WORSE for g in groups[1:]):
        return f"The best group ({best}) is ahead of every other group at level {alpha:g}."
    return f"No group is within noise of the best ({best}); groups with one run cannot be tested."


def render_groups_csv(jobs: list[JobResult], groups: list[Group]) -> str:
    """One row per group: its overrides, n, failed runs, mean and std of each metric, test, p and verdict."""
    metric = _metric_name(jobs) or "optimized_value"
    extra = _group_metrics(jobs)
    settings = list(groups[0].settings) if groups else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["group", *settings, "n", "failed"]
    for name in (metric, *extra):
        header += [f"{name}_mean", f"{name}_std"]
    writer.writerow([*header, "test", "p_value", "verdict"])
    for group in groups:
        row: list[Any] = [group.label, *group.settings.values(), group.stats()[2], group.failed]
        for name in (None, *extra):
            mean, std, _ = group.stats(name)
            row += [_csv_number(mean), _csv_number(std)]
        writer.writerow([*row, group.test, _csv_number(group.p_value), group.verdict])
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(
    sweep_dir: Path,
    jobs: list[JobResult],
    optuna: dict[str, Any] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> str:
    """The summary as a Markdown document (heading, shared overrides, groups when runs repeat over seeds
    or folds, the job table, Optuna's best trial)."""
    columns, rows, common = summary_table(jobs)
    groups = sweep_groups(jobs, alpha)
    failed = sum(j.failed for j in jobs)
    pruned = sum(j.pruned for j in jobs)
    metric = _metric_name(jobs)
    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{len(jobs)} jobs, {len(jobs) - failed - pruned} completed, "
        + (f"{pruned} pruned, " if pruned else "")
        + f"{failed} failed"
        + (f"; sorted by `{metric}` (best first)." if metric else "."),
        "",
    ]
    if common:
        lines += ["Shared overrides: " + " ".join(f"`{k}={v}`" for k, v in common.items()), ""]
    if groups:
        lines += group_markdown(jobs, groups, alpha)
    lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in columns) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    if optuna and "best_params" in optuna:
        params = " ".join(f"`{k}={_short_number(str(v))}`" for k, v in optuna["best_params"].items())
        lines += ["", f"Optuna best value: {_fmt(optuna.get('best_value'))} with {params}"]
    return "\n".join(lines) + "\n"


def render_csv(jobs: list[JobResult], alpha: float = DEFAULT_ALPHA) -> str:
    """Every job with every override and numeric metric, one row per job (sorted like the table); when
    runs repeat over seeds or folds, each row also carries its group's label, n, mean, std and verdict."""
    columns, rows, common = summary_table(jobs, detail="full")
    of_job = {id(job): group for group in sweep_groups(jobs, alpha) for job in group.jobs}
    group_columns = ["group", "group_n", "group_mean", "group_std", "group_verdict"] if of_job else []
    # In the CSV the shared overrides are columns too, so each row stands on its own.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*columns[:2], *common, *columns[2:], *group_columns])
    for job, row in zip(sort_jobs(jobs), rows, strict=True):
        extra: list[str] = []
        if of_job:
            group = of_job[id(job)]
            mean, std, n = group.stats()
            extra = [group.label, str(n), _csv_number(mean), _csv_number(std), group.verdict]
        writer.writerow([*row[:2], *common.values(), *row[2:], *extra])
    return buffer.getvalue()


def read_optuna_results(sweep_dir: Path) -> dict[str, Any] | None:
    """Optuna sweeper's ``optimization_results.yaml`` (best params and value), when the sweep wrote one."""
    path = Path(sweep_dir) / OPTUNA_RESULTS
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path))


def write_summary(sweep_dir: str | Path, alpha: float = DEFAULT_ALPHA) -> list[JobResult]:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir`` (and, when runs repeat over seeds or
    folds, ``summary_groups.csv`` and ``summary_groups.png``); return the jobs found.

    ``alpha``: the level of the t-tests that mark groups within noise of the best.
    """
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    if not jobs:
        return jobs
    optuna = read_optuna_results(sweep_dir)
    atomic_write_text(sweep_dir / SUMMARY_CSV, render_csv(jobs, alpha))
    atomic_write_text(sweep_dir / SUMMARY_MD, render_markdown(sweep_dir, jobs, optuna, alpha))
    groups = sweep_groups(jobs, alpha)
    if groups:
        atomic_write_text(sweep_dir / SUMMARY_GROUPS_CSV, render_groups_csv(jobs, groups))
        plot_groups(groups, _metric_name(jobs) or "optimized_value", alpha, sweep_dir / SUMMARY_GROUPS_PNG)
    return jobs


def print_summary(sweep_dir: str | Path, jobs: list[JobResult], alpha: float = DEFAULT_ALPHA) -> None:
    """Print the table on the console (rich), failed jobs' errors below it, the groups over seeds / folds
    with their verdicts, and Optuna's best trial."""
    from rich.console import Console
    from rich.table import Table

    columns, rows, common = summary_table(jobs, detail="compact")
    columns, rows = columns[:-1], [row[:-1] for row in rows]  # errors are listed below the table
    ordered = sort_jobs(jobs)
    failed = [j for j in ordered if j.failed]
    pruned = sum(j.pruned for j in ordered)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and pipes: no need to squeeze into 80 columns
    title = (
        f"Sweep summary ({len(jobs)} jobs, "
        + (f"{pruned} pruned, " if pruned else "")
        + f"{len(failed)} failed)"
    )
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for job, row in zip(ordered, rows, strict=True):
        table.add_row(*row, style="red" if job.failed else ("dim" if job.pruned else None))
    console.print(table)
    if common:
        console.print("Shared overrides: " + " ".join(f"{k}={v}" for k, v in common.items()), markup=False)
    for job in failed:
        console.print(
            f"job {job.name} {job.status}: {_short_error(job.error, 300)}", markup=False, style="red"
        )
    groups = sweep_groups(jobs, alpha)
    if groups:
        metric = _metric_name(jobs) or "optimized_value"
        grouped = Table(title=f"Groups over seeds / folds (t-test at {alpha:g})", title_justify="left")
        for column in ("group", "n", f"{metric} mean ± std", "vs best"):
            grouped.add_column(column)
        for group in groups:
            mean, std, n = group.stats()
            grouped.add_row(group.label, str(n), format_mean_std(mean, std), _verdict_text(group))
        console.print(grouped)
    optuna = read_optuna_results(Path(sweep_dir))
    if optuna and "best_params" in optuna:
        params = " ".join(f"{k}={v}" for k, v in optuna["best_params"].items())
        console.print(f"Optuna best value {_fmt(optuna.get('best_value'))}: {params}", markup=False)
    console.print(f"Summary: {Path(sweep_dir) / SUMMARY_MD} and {SUMMARY_CSV}", markup=False)
