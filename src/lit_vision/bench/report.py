"""Writing benchmark rows: results.json (merged by case), results.md and the README's bench section."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any

import torch

from lit_vision.utils.io import atomic_write_text, write_json

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
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


def load_results(path: Path) -> dict[str, Any]:
    """The saved results, or an empty document."""
    if path.is_file():
        return json.loads(path.read_text())
    return {"cases": {}}


def merge_case(results: dict[str, Any], case: str, rows: list[dict[str, Any]], seconds: float) -> None:
    """Replace ``case``'s rows in ``results``."""
    results.setdefault("cases", {})[case] = {"rows": rows, "seconds": round(seconds, 1)}


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
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(results: dict[str, Any], out_dir: Path, readme: Path | None) -> None:
    """Write results.json and results.md; refresh the README's bench section when it has the marks."""
    write_json(out_dir / "results.json", results)
    table = markdown_table(results)
    atomic_write_text(out_dir / "results.md", table)
    if readme is not None and readme.is_file():
        text = readme.read_text()
        if START in text and END in text:
            pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
            text = pattern.sub(lambda _: f"{START}\n{table}{END}", text)
            atomic_write_text(readme, text)
