"""Listen-by-numbers for the clips: is the experiment's middle window really full of sound?

usage: python check-clips.py [FILE.flac ...]   (numpy, scipy, soundfile)

For each file: duration, sample rate, peak (dBFS), and then, after resampling to 11025 Hz mono
(as the experiment does), the middle 8192 samples: their RMS (dBFS), spectral centroid, the
quietest and loudest 50 ms frame inside the window, and the share of 50 ms frames within 30 dB of
the loudest (so a window that is mostly silence shows up). The last line per file is a coarse
RMS timeline of the window in 50 ms frames (one character per frame: ' .:-=+*#%@' from quiet to
loud, relative to the window's loudest frame, 3 dB a step).
"""

import glob
import os
import sys
from fractions import Fraction

import numpy as np
import soundfile
from scipy import signal

TARGET_RATE = 11025
WINDOW = 8192


def db(x):
    return 20 * np.log10(np.maximum(x, 1e-12))


def main(paths):
    for path in paths:
        x, rate = soundfile.read(path, dtype="float64", always_2d=True)
        info = soundfile.info(path)
        x = x.mean(axis=1)
        ratio = Fraction(TARGET_RATE, rate)
        y = signal.resample_poly(x, ratio.numerator, ratio.denominator)
        start = (len(y) - WINDOW) // 2
        w = y[start : start + WINDOW]
        spec = np.abs(np.fft.rfft(w * np.hanning(len(w)))) ** 2
        freqs = np.fft.rfftfreq(len(w), 1 / TARGET_RATE)
        centroid = (freqs * spec).sum() / spec.sum()
        hop = TARGET_RATE // 20
        frames = np.array([np.sqrt(np.mean(w[i : i + hop] ** 2)) for i in range(0, len(w) - hop + 1, hop)])
        fdb = db(frames) - db(frames.max())
        timeline = "".join(" .:-=+*#%@"[int(np.clip(9 + v / 3, 0, 9))] for v in fdb)
        print(
            f"{os.path.basename(path):28s} {len(x) / rate:5.3f} s  {rate:5d} Hz {info.subtype:6s} "
            f"peak {db(np.abs(x).max()):6.2f} dBFS | middle {WINDOW}@{TARGET_RATE} "
            f"({start / TARGET_RATE:.4f}-{(start + WINDOW) / TARGET_RATE:.4f} s): "
            f"RMS {db(np.sqrt(np.mean(w ** 2))):6.2f} dBFS, centroid {centroid:6.0f} Hz, "
            f"50ms frames {db(frames.min()):6.1f}..{db(frames.max()):6.1f} dBFS, "
            f"{np.mean(fdb > -30) * 100:3.0f}% within 30 dB of loudest"
        )
        print(f"{'':28s} window timeline |{timeline}|")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1:] or sorted(glob.glob(os.path.join(here, "*.flac"))))
