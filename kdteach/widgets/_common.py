"""Shared pieces of the widgets: record checks and outputs as display data (never printed)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Iterable, Sequence

from matplotlib.figure import Figure

def check_records(records: Any, name: str = "records") -> list[dict]:
    if isinstance(records, dict) or not isinstance(records, Iterable):
        raise TypeError(f"{name} must be a list of run-record dicts, got {type(records).__name__}")
    records = list(records)
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "method" not in r:
            raise TypeError(f"{name}[{i}] must be a run-record dict with a 'method', got {type(r).__name__}")
    return records



def figure_output(fig: Figure, text: str) -> dict:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": text}}


def html_output(html_text: str, plain: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": html_text, "text/plain": plain}}


def html_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
