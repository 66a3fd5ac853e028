"""Rows from repeats, and the table printed at the end (Markdown, for docs/performance.md)."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Check, summarize

__all__ = ["figure_rows", "table"]


def figure_rows(checks: list[Check], samples: list[dict[str, float]]) -> list[dict[str, Any]]:
    """One row per check: the median of its key over the repeats, with min, max and target."""
    medians = {key: summarize([s[key] for s in samples]).median for key in samples[0]}
    rows = []
    for check in checks:
        summary = summarize([sample[check.key] for sample in samples])
        rows.append(
            {
                "key": check.key,
                "label": check.label,
                "median": summary.median,
                "min": summary.low,
                "max": summary.high,
                "unit": check.unit,
                "target": check.target_text(),
                "met": check.met(summary.median),
                "measured": summary.text(check.unit),
                "detail": check.detail.format(**medians),
            }
        )
    return rows


def table(figures: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | median [min, max] | target | met | medians |",
        "|---|---|---|---|---|",
    ]
    for figure in figures:
        for row in figure["rows"]:
            met = "yes" if row["met"] else "**no**"
            lines.append(
                f"| {row['label']} | {row['measured']} | {row['target']} | {met} "
                f"| {row['detail']} |"
            )
    return "\n".join(lines)
