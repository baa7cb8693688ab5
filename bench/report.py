"""Writing benchmark rows: results.json (merged by case) and results.md."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch

from lit_vision.utils.io import atomic_write_text, write_json

COLUMNS = ("case", "setting", "device", "metric", "value", "baseline", "ratio", "note")


def device_name() -> str:
    """A short description of the compute device (GPU name, or CPU model with the thread count)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def make_row(
    case: str,
    setting: str,
    device: str,
    metric: str,
    value: float | None,
    baseline: float | None = None,
    note: str = "",
    ratio: float | str | None = "auto",
) -> dict[str, Any]:
    """One result row; ``ratio`` defaults to value / baseline (None when either is missing)."""
    if ratio == "auto":
        ratio = round(value / baseline, 3) if value is not None and baseline else None
    return {
        "case": case,
        "setting": setting,
        "device": device,
        "metric": metric,
        "value": None if value is None else round(float(value), 4),
        "baseline": None if baseline is None else round(float(baseline), 4),
        "ratio": ratio,
        "note": note,
    }


def load_results(path: Path) -> dict[str, Any]:
    """The saved results, or an empty document."""
    if path.is_file():
        return json.loads(path.read_text())
    return {"cases": {}}


def merge_case(
    results: dict[str, Any], case: str, rows: list[dict[str, Any]], seconds: float, quick: bool = False
) -> None:
    """Replace ``case``'s rows in ``results``."""
    entry: dict[str, Any] = {"rows": rows, "seconds": round(seconds, 1)}
    if quick:
        entry["quick"] = True
    results.setdefault("cases", {})[case] = entry


def suite_info(cases: list[str], seconds: float, quick: bool) -> dict[str, Any]:
    """When, where and how long the last ``python -m bench`` run took."""
    import datetime

    return {
        "cases": cases,
        "seconds": round(seconds, 1),
        "quick": quick,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": device_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_native_bf16": _native_bf16(),
    }


def _native_bf16() -> bool:
    from lit_vision.utils.hardware import cpu_has_native_bf16

    return cpu_has_native_bf16()


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value)


def markdown_table(results: dict[str, Any]) -> str:
    """Every case's rows as one Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for case, entry in results.get("cases", {}).items():
        for row in entry["rows"]:
            cells = [format_value(row.get(col, case if col == "case" else None)) for col in COLUMNS]
            if entry.get("quick"):
                cells[0] += " (quick)"
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    suite = results.get("suite")
    if suite:
        seconds = {case: entry.get("seconds") for case, entry in results.get("cases", {}).items()}
        lines.append("")
        lines.append(
            f"Last run {suite['date']} on {suite['device']}, torch {suite['torch']}"
            f"{' (quick sizes)' if suite.get('quick') else ''}: {len(suite['cases'])} case(s) in "
            f"{suite['seconds']:.0f} s. Seconds per case: "
            + ", ".join(f"{case} {s:.0f}" for case, s in seconds.items() if s is not None)
            + "."
        )
    return "\n".join(lines) + "\n"


def write_reports(results: dict[str, Any], out_dir: Path) -> None:
    """Write results.json and results.md into ``out_dir``."""
    write_json(out_dir / "results.json", results)
    atomic_write_text(out_dir / "results.md", markdown_table(results))
