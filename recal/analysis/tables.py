"""Tables the analysis commands write: one CSV for programs, one Markdown file for papers.

Every command writes its numbers twice, from the same rows: ``<stem>.csv`` with
raw values (fractions, exact integers, one column per statistic) and
``<stem>.md`` with the same rows formatted for reading (percentages, ``mean ±
std``, thousands separators) and a note saying how the numbers were made.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

Row = Mapping[str, Any]


def write_csv(rows: Sequence[Row], path: Path) -> Path:
    """Write ``rows`` (dicts with the same keys, in order) as a CSV file; return its path."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: _csv_cell(row.get(key)) for key in columns} for row in rows)
    return path


def _csv_cell(value: Any) -> Any:
    # Empty cells, not "nan" / "None", for statistics that do not exist (one seed has no std).
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def markdown_table(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows``; cells are written with ``str`` (format them first)."""
    columns = list(columns or dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(row.get(key)) for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value).replace("|", "\\|")


def write_markdown(rows: Sequence[Row], path: Path, title: str = "", note: str = "") -> Path:
    """Write ``rows`` as a Markdown table with an optional title and note below it."""
    parts = [f"# {title}\n" if title else "", markdown_table(rows), f"\n{note.strip()}\n" if note else ""]
    path.write_text("\n".join(part for part in parts if part))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1) of the values that are not None or NaN.

    With one value there is no sample standard deviation: it is NaN, which the tables show
    as an empty CSV cell and "—" in Markdown (and a mean of no values is NaN too).
    """
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return float(array.mean()), std


def fmt_mean_std(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    """``"93.12 ± 0.41"`` (``scale=100`` for accuracies); no ``±`` part when std is NaN."""
    text = fmt_number(mean, scale, digits)
    return text if math.isnan(mean) or math.isnan(std) else f"{text} ± {fmt_number(std, scale, digits)}"


def fmt_number(value: float, scale: float = 1.0, digits: int = 2) -> str:
    """``value × scale`` to ``digits`` decimals; "—" for a statistic that does not exist (NaN)."""
    return "—" if math.isnan(value) else f"{value * scale:.{digits}f}"


def fmt_int(value: int | None) -> str:
    """An integer with thousands separators (``25,557,032``)."""
    return "—" if value is None else f"{int(value):,}"
