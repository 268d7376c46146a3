"""The jinja environment of the package's page templates: the run page and the sweep page."""

from __future__ import annotations


def templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("pal", "templates"),
                              autoescape=jinja2.select_autoescape(["html"]))
