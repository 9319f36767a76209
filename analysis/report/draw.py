"""What every figure of the report shares: a matplotlib Figure built without pyplot, a grid of
panels, PNG bytes, a literal SQL ``IN`` list.

The figures are built without pyplot: no backend is chosen or forced (a notebook keeps its
own), and nothing stays registered once a figure is dropped.
"""

from __future__ import annotations

import io
import math

MAX_PANELS = 6  # panels of one figure (model × protocol groups beyond it are left out)
MAX_LINES = 10  # curves of one panel


def figure(**kw):
    """A ``matplotlib.figure.Figure`` (matplotlib imported here, when a figure is drawn)."""
    from matplotlib.figure import Figure

    return Figure(**kw)


def png(fig) -> bytes:
    """``fig`` as PNG bytes (as the report embeds it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def grid(n: int, w: float = 4.2, h: float = 3.2):
    """A figure of ``n`` panels, three to a row: (figure, the ``n`` axes)."""
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = figure(figsize=(w * cols, h * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def in_list(ids: list[str]) -> str:
    """``'a', 'b'`` for a SQL ``IN (...)`` (a literal list is pushed down into the Parquet scan;
    a join with a list is not)."""
    return ", ".join("'" + str(i).replace("'", "''") + "'" for i in ids) or "NULL"
