"""``pal codec``, the second experiment: a small neural codec trained with each loss on a corpus
and judged on the whole files of a test corpus no model saw. ``model`` (the codec), ``corpus``
(reading folders, the built-in corpus in ``data/``), ``segments`` (the seeded training draw),
``config``, ``train``, ``folder`` (the codec run folder), ``judging``, ``table`` and
``experiment`` (the whole command)."""
