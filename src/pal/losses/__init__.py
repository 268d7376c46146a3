"""The losses the harness trains with: the library's, the peers', the mu-law objective, anyone's own.

- :mod:`.registry`: every loss the harness knows by name, each declared once with what the
  application needs of it (does it decode, its memory formula, which page sections it needs).
- :mod:`.specs`: ``--losses`` entries parsed and built into loss modules.
- :mod:`.peers`: the peers a researcher would otherwise train with (auraloss's MR-STFT, its mel
  variant, DAC's mel loss, the mu-law objective).
- :mod:`.mel`: a multi-scale mel loss after the Descript Audio Codec's recipe.
- :mod:`.mulaw`: the post's addendum, samples as 256 mu-law classes.
- :mod:`.guard`: a user's loss guarded for the whole run.
- :mod:`.budget`: options bounded before anything is allocated.

It may import :mod:`pal.core` and the library, nothing else of ``pal``.
"""
