"""Self-contained HTML reports: tables inline, plots embedded as base64 PNG, no scripts, no server."""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1280px;
color:#1d2733;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #d5dbe3;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem}
.wrap{overflow-x:auto}table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #d5dbe3;padding:.25rem .55rem;text-align:right}
th{background:#eef2f7}td.t,th.t{text-align:left}
img{max-width:100%;border:1px solid #e5e9ef;margin:.4rem .4rem .4rem 0}
.muted{color:#687483;font-size:.85rem}.mistake{max-width:650px;text-align:left}
"""


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, text_cols: Sequence[str] = ()
) -> str:
    """An HTML table; text columns are left-aligned, everything is escaped."""
    if not rows:
        return '<p class="muted">(none)</p>'
    cols = list(columns or rows[0].keys())
    text = set(text_cols)

    def cell(tag: str, col: str, value: str) -> str:
        cls = ' class="t"' if col in text else ""
        return f"<{tag}{cls}>{html.escape(value)}</{tag}>"

    head = "".join(cell("th", c, c) for c in cols)
    body = "".join("<tr>" + "".join(cell("td", c, fmt(r.get(c, ""))) for c in cols) + "</tr>" for r in rows)
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{html.escape(text)}</h{level}>"


def paragraph(text: str, muted: bool = False) -> str:
    cls = ' class="muted"' if muted else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def mistake_html(m: dict[str, Any]) -> str:
    """One explained mistake: what was said and what was true, and the review with its words shaded
    by how much they pushed toward the wrong answer (``m["html"]`` is built escaped)."""
    head = (
        f"<b>{html.escape(m['predicted'])}</b> (confidence {m['confidence']:.2f}), "
        f"labelled {html.escape(m['true'])}; {html.escape(m['method'])}"
    )
    return f'<div class="mistake"><p class="muted">{head}</p><p>{m["html"]}</p></div>'


def save_figure(fig: Any, path: Path) -> Path:
    """Tight layout, write, and close (matplotlib keeps every open figure alive otherwise)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(path: Path, title: str, parts: Sequence[str]) -> Path:
    """One HTML file written atomically; ``parts`` are HTML fragments built with the helpers above."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="muted">medsent report, {stamp}</p>'
        + "".join(parts)
        + "</body></html>"
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(doc)
    os.replace(tmp, path)
    return path
