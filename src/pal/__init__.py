"""``pal``: the experiment application around the loss library.

Run, page, measures and claims, the blind listening test, sweeps and benchmarks (``pal --help``).
Installed with ``pip install 'perceptual-audio-loss[app]'``; the library it exercises is
:mod:`perceptual_audio_loss`, which never imports this package.
"""

from perceptual_audio_loss import __version__

__all__ = ["__version__"]
