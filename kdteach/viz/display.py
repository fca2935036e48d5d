"""Show kdteach figures in Jupyter without pyplot.

kdteach's figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state). IPython
only knows how to render such an object as PNG once matplotlib's inline backend has been
activated (``%matplotlib inline``), which does not happen under ``MPLBACKEND=Agg`` (CI) or when a
notebook never imports pyplot. Importing :mod:`kdteach.viz` inside IPython therefore registers a
PNG formatter for ``Figure``, so a cell ending in ``fig`` stores and shows the image everywhere.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure


def figure_png(fig: Figure, dpi: float | None = None) -> bytes:
    """PNG bytes of ``fig`` (tight bounding box), as shown in notebooks."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def register_notebook_display(ipython=None) -> bool:
    """Register :func:`figure_png` as IPython's ``image/png`` formatter for Figure.

    Args:
        ipython: an IPython shell (default: the running one, if any).

    Returns:
        True if a formatter was registered, False outside IPython.
    """
    if ipython is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        ipython = get_ipython()
    if ipython is None:
        return False
    ipython.display_formatter.formatters["image/png"].for_type(Figure, figure_png)
    return True
