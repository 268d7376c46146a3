"""What a generation scores: the measures, the judges, their statistics and the claims.

- :mod:`.registry`: every measure declared once (key, heading, unit, direction, speech only,
  the claim it serves, how it is computed); the page, the claims, ``pal compare`` and the records
  read it.
- :mod:`.formulas`: the measures computed by formula (band LSD, MR-STFT distance, SNR, STOI...).
- :mod:`.judges`: measures made by a model of listeners (CDPAM), each behind an optional extra.
- :mod:`.stats`: means and 95 % intervals over seeds, raters or clips.
- :mod:`.claims`: the post's claims as a table.

It may import :mod:`pal.core` and the library, nothing else of ``pal``.
"""
