"""What the pages share: the jinja environment of the templates (the run page, the sweep page),
and writing a matplotlib figure as an image beside them."""

from __future__ import annotations

from pathlib import Path

from ..core.files import atomic_write


def templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("pal.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html"]))


# Margins in inches around a figure's panels, and the gaps between panels, for the small labels
# used here. Fixed margins instead of tight_layout, which measured as half of the page's time.
MARGIN_INCHES = {"left": 0.6, "right": 0.2, "bottom": 0.45, "top": 0.3}
SUPTITLE_INCHES = 0.25


def save_figure(figure, path: Path, wspace: float = 0.3, hspace: float = 0.75, right_inches: float | None = None) -> None:
    """Lay out with fixed margins, write atomically as PNG, and release a matplotlib figure."""
    import matplotlib.pyplot as plt

    width, height = figure.get_size_inches()
    top = MARGIN_INCHES["top"] + (SUPTITLE_INCHES if figure._suptitle is not None else 0.0)
    figure.subplots_adjust(left=MARGIN_INCHES["left"] / width,
                           right=1.0 - (right_inches or MARGIN_INCHES["right"]) / width,
                           bottom=MARGIN_INCHES["bottom"] / height, top=1.0 - top / height,
                           wspace=wspace, hspace=hspace)
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png"))
    plt.close(figure)
