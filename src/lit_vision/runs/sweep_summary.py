"""The summary table of a multirun sweep: every job's overrides, status and final metrics.

Built from what the jobs leave on disk (``<job>/.hydra/overrides.yaml`` and ``<job>/metrics.json``), so it
works the same for local sweeps, Optuna studies and SLURM jobs, and for sweeps that were cut short. Jobs
are sorted by their ``optimized_metric`` (best first); failed jobs come last with their error.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lit_vision.utils.io import atomic_write_text

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
OPTUNA_RESULTS = "optimization_results.yaml"
# Shown besides the optimised metric: in Markdown every top-level test metric (test/acc, not
# test/acc_class/3), on the console only the test counterpart of the optimised metric and the test loss.
# The CSV has every metric.
SHOWN_KEYS = ("epochs", "fit_seconds")


@dataclass
class JobResult:
    """One job of a sweep as found on disk."""

    name: str
    path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.metrics:
            return "no metrics.json"
        return str(self.metrics.get("status") or "completed")

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def value(self) -> float | None:
        value = self.metrics.get("optimized_value")
        if not self.ok or value is None:
            return None
        value = float(value)
        return value if math.isfinite(value) else None

    @property
    def error(self) -> str:
        return str(self.metrics.get("error") or "")


def _job_sort_key(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)


def collect_jobs(sweep_dir: str | Path) -> list[JobResult]:
    """Every job folder of ``sweep_dir`` (one holding ``.hydra/overrides.yaml`` or ``metrics.json``)."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for path in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=_job_sort_key):
        overrides_file = path / ".hydra" / "overrides.yaml"
        metrics_file = path / "metrics.json"
        if not overrides_file.is_file() and not metrics_file.is_file():
            continue
        overrides: dict[str, str] = {}
        if overrides_file.is_file():
            for item in OmegaConf.to_container(OmegaConf.load(overrides_file)) or []:
                key, _, value = str(item).partition("=")
                overrides[key] = value
        metrics: dict[str, Any] = {}
        if metrics_file.is_file():
            try:
                metrics = json.loads(metrics_file.read_text())
            except (OSError, ValueError):
                metrics = {"status": "unreadable metrics.json"}
        jobs.append(JobResult(path.name, path, overrides, metrics))
    return jobs


def sort_jobs(jobs: list[JobResult]) -> list[JobResult]:
    """Completed jobs best first (by ``optimized_value`` and its mode), then the rest in job order."""
    modes = {j.metrics.get("optimized_mode") for j in jobs if j.value is not None}
    descending = "min" not in modes
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


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(sweep_dir: Path, jobs: list[JobResult], optuna: dict[str, Any] | None = None) -> str:
    """The summary as a Markdown document (heading, shared overrides, table, Optuna's best trial)."""
    columns, rows, common = summary_table(jobs)
    failed = sum(not j.ok for j in jobs)
    metric = _metric_name(jobs)
    lines = [
        f"# Sweep summary: {sweep_dir}",
        "",
        f"{len(jobs)} jobs, {len(jobs) - failed} completed, {failed} failed"
        + (f"; sorted by `{metric}` (best first)." if metric else "."),
        "",
    ]
    if common:
        lines += ["Shared overrides: " + " ".join(f"`{k}={v}`" for k, v in common.items()), ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in columns) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    if optuna and "best_params" in optuna:
        params = " ".join(f"`{k}={_short_number(str(v))}`" for k, v in optuna["best_params"].items())
        lines += ["", f"Optuna best value: {_fmt(optuna.get('best_value'))} with {params}"]
    return "\n".join(lines) + "\n"


def render_csv(jobs: list[JobResult]) -> str:
    """Every job with every override and numeric metric, one row per job (sorted like the table)."""
    columns, rows, common = summary_table(jobs, detail="full")
    # In the CSV the shared overrides are columns too, so each row stands on its own.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*columns[:2], *common, *columns[2:]])
    for row in rows:
        writer.writerow([*row[:2], *common.values(), *row[2:]])
    return buffer.getvalue()


def read_optuna_results(sweep_dir: Path) -> dict[str, Any] | None:
    """Optuna sweeper's ``optimization_results.yaml`` (best params and value), when the sweep wrote one."""
    path = Path(sweep_dir) / OPTUNA_RESULTS
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path))


def write_summary(sweep_dir: str | Path) -> list[JobResult]:
    """Write ``summary.csv`` and ``summary.md`` into ``sweep_dir``; return the jobs found."""
    sweep_dir = Path(sweep_dir)
    jobs = collect_jobs(sweep_dir)
    if not jobs:
        return jobs
    optuna = read_optuna_results(sweep_dir)
    atomic_write_text(sweep_dir / SUMMARY_CSV, render_csv(jobs))
    atomic_write_text(sweep_dir / SUMMARY_MD, render_markdown(sweep_dir, jobs, optuna))
    return jobs


def print_summary(sweep_dir: str | Path, jobs: list[JobResult]) -> None:
    """Print the table on the console (rich), failed jobs' errors below it, and Optuna's best trial."""
    from rich.console import Console
    from rich.table import Table

    columns, rows, common = summary_table(jobs, detail="compact")
    columns, rows = columns[:-1], [row[:-1] for row in rows]  # errors are listed below the table
    ordered = sort_jobs(jobs)
    failed = [j for j in ordered if not j.ok]
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and pipes: no need to squeeze into 80 columns
    table = Table(title=f"Sweep summary ({len(jobs)} jobs, {len(failed)} failed)", title_justify="left")
    for column in columns:
        table.add_column(column)
    for job, row in zip(ordered, rows, strict=True):
        table.add_row(*row, style=None if job.ok else "red")
    console.print(table)
    if common:
        console.print("Shared overrides: " + " ".join(f"{k}={v}" for k, v in common.items()), markup=False)
    for job in failed:
        console.print(
            f"job {job.name} {job.status}: {_short_error(job.error, 300)}", markup=False, style="red"
        )
    optuna = read_optuna_results(Path(sweep_dir))
    if optuna and "best_params" in optuna:
        params = " ".join(f"{k}={v}" for k, v in optuna["best_params"].items())
        console.print(f"Optuna best value {_fmt(optuna.get('best_value'))}: {params}", markup=False)
    console.print(f"Summary: {Path(sweep_dir) / SUMMARY_MD} and {SUMMARY_CSV}", markup=False)
