"""Pieces every report shares (the demo's and the bench's): PNG figures, self-contained HTML, CSV bytes.

matplotlib loads inside :func:`png` only, with the Agg backend, so importing this module costs nothing.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["STYLE", "csv_bytes", "html_table", "img_tag", "pareto_front", "png"]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
code { font-size: 0.8rem; } img { max-width: 100%; } .note { color: #555; font-size: 0.9rem; }
"""


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (latency, accuracy) points no other point beats on both (lower latency, higher accuracy), by latency."""
    front: list[tuple[float, float]] = []
    for latency, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((latency, accuracy))
    return front


def png(draw: Callable[[Any], None], *, size: tuple[float, float]) -> bytes:
    """A PNG of the figure that ``draw(figure)`` fills."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=size, dpi=110)
    try:
        draw(figure)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def img_tag(data: bytes | None, alt: str) -> str:
    """An inline ``<img>`` of PNG bytes (a note when there is none)."""
    if data is None:
        return f"<p class='note'>({html.escape(alt)}: not available)</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, text_columns: Sequence[int] = ()) -> str:
    """An HTML table, cells escaped; ``text_columns`` are left-aligned."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f"<td{' class=text' if i in text_columns else ''}>{html.escape(str(v))}</td>" for i, v in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def csv_bytes(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """CSV with a header of ``columns``; other keys of the rows are left out."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()
