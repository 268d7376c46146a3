"""What a person reads: the run page, its charts, and ``pal compare``'s tables.

- :mod:`.page`: the run page (``page.html``) built from a run folder's records.
- :mod:`.charts`: line charts as inline SVG.
- :mod:`.compare`: several finished runs side by side, as Markdown tables.
- :mod:`.templates`: the jinja environment every page shares.

It may import :mod:`pal.core`, :mod:`pal.losses`, :mod:`pal.measures` and :mod:`pal.run` (to read
a run folder); :mod:`pal.run` never imports it: the command line hands the page builder to
:func:`pal.run.experiment.run_experiment`.
"""
