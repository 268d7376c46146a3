"""Reference values from zounds 1.57.0's own ``PerceptualLoss``, configured as the post was.

Run with the python of the venv that ``tools/zounds/make-venv`` builds; it never imports
``perceptual_audio_loss`` (that needs a newer numpy than zounds runs on)::

    .venv-zounds/bin/python tools/zounds/harness.py time --input x.npy --target y.npy --repeats 20
    .venv-zounds/bin/python tools/zounds/harness.py golden --inputs pairs.npz --out golden.npz

``pairs.npz`` holds ``inputs`` and ``targets``, both ``(pairs, samples)``; ``golden.npz`` gets
``value64``, ``value32`` (``(pairs,)``) and ``grad64`` (``(pairs, samples)``), each pair computed
on its own as a batch of one.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
import types

import numpy as np
import scipy.signal
import torch

# The 2018 experiment's settings (JohnVinyard/experiments, audio-loss/audio_loss.py, 2018):
# zounds.SR11025(), BarkScale(FrequencyBand(1, nyquist), n_bands=512), and
# PerceptualLoss(scale, samplerate, lap=1, log_factor=10, basis_size=512,
#                frequency_weighting=AWeighting(), cosine_similarity=True).
N_BANDS = 512
TAPS = 512
LOWEST_HZ = 1
STRIDE = 1
LOG_FACTOR = 10


def nudge_repeated_zero(firwin2):
    """``firwin2`` that accepts ``freq`` starting ``0, 0``, as scipy 1.1 did.

    zounds puts the lowest bands' grids at ``max(0, start_hz)``, so a band whose ERB reaches below
    DC asks for 0 twice. scipy 1.1 (the post's) moved repeated values apart by machine epsilon
    before interpolating; scipy >= 1.2 refuses a repeated 0. Moving the second 0 up by epsilon
    gives the same filter (scipy 1.1 also moved the first to -eps, which changes only the DC gain,
    by half the Gaussian's edge value, exp(-136)).
    """

    @functools.wraps(firwin2)
    def patched(numtaps, freq, gain, *args, **kwargs):
        freq = np.array(freq, dtype=np.float64)
        if len(freq) > 1 and freq[0] == freq[1] == 0.0:
            freq[1] = np.finfo(np.float64).eps
        return firwin2(numtaps, freq, gain, *args, **kwargs)

    return patched


@functools.lru_cache(maxsize=None)
def import_zounds():
    """``import zounds`` on today's scipy, without its Cython ``countbits`` extension.

    ``zounds.nputil`` does ``from countbits import *`` for Hamming distances, which the loss never
    uses; a stand-in module lets the import succeed and fails loudly if anything calls it.
    """

    def not_built(*args, **kwargs):
        raise NotImplementedError("countbits is a stand-in; the Cython extension was not built")

    countbits = types.ModuleType("countbits")
    countbits.count_bits = countbits.count_packed_bits = not_built
    sys.modules.setdefault("countbits", countbits)
    # Before zounds binds it with `from scipy.signal import firwin2`.
    scipy.signal.firwin2 = nudge_repeated_zero(scipy.signal.firwin2)
    import zounds

    return zounds


def post_loss(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """zounds' ``PerceptualLoss`` exactly as the 2018 experiment built it, in ``dtype``.

    zounds keeps its filters and band weights as plain attributes, not buffers, so ``.double()``
    would not reach them: they are widened here by hand (from the float32 values zounds rounds
    them to), and the arithmetic then runs in ``dtype``.
    """
    zounds = import_zounds()
    samplerate = zounds.SR11025()
    scale = zounds.BarkScale(zounds.FrequencyBand(LOWEST_HZ, samplerate.nyquist), n_bands=N_BANDS)
    loss = zounds.learn.PerceptualLoss(
        scale,
        samplerate,
        lap=STRIDE,
        log_factor=LOG_FACTOR,
        basis_size=TAPS,
        frequency_weighting=zounds.AWeighting(),
        cosine_similarity=True,
    )
    loss.weights = loss.weights.to(dtype)
    loss.frequency_weights = loss.frequency_weights.to(dtype)
    return loss


def value_and_grad(loss, x: np.ndarray, y: np.ndarray, dtype: torch.dtype) -> tuple[float, np.ndarray]:
    """``loss(x, y)`` for one pair and its gradient with respect to ``x``."""
    x = torch.tensor(x[None], dtype=dtype, requires_grad=True)
    y = torch.tensor(y[None], dtype=dtype)
    value = loss(x, y)
    value.backward()
    return value.item(), x.grad[0].numpy().astype(np.float64)


def golden(args: argparse.Namespace) -> None:
    pairs = np.load(args.inputs)
    inputs, targets = pairs["inputs"], pairs["targets"]
    loss64, loss32 = post_loss(torch.float64), post_loss(torch.float32)
    value64, value32, grad64 = [], [], []
    for x, y in zip(inputs, targets):
        value, grad = value_and_grad(loss64, x, y, torch.float64)
        value64.append(value)
        grad64.append(grad)
        value32.append(value_and_grad(loss32, x, y, torch.float32)[0])
    np.savez(args.out, value64=np.array(value64), value32=np.array(value32), grad64=np.stack(grad64))
    print(json.dumps({"pairs": len(inputs), "value64": value64, "value32": value32}))


def timing(args: argparse.Namespace) -> None:
    """Forward + backward of ``loss(x, y)`` per call, float32 as zounds runs, after one warm-up."""
    loss = post_loss(torch.float32)
    x = torch.tensor(np.load(args.input).reshape(1, -1), dtype=torch.float32, requires_grad=True)
    y = torch.tensor(np.load(args.target).reshape(1, -1), dtype=torch.float32)
    loss(x, y).backward()
    ms = []
    for _ in range(args.repeats):
        x.grad = None
        start = time.perf_counter()
        loss(x, y).backward()
        ms.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"ms": ms, "median_ms": statistics.median(ms), "threads": torch.get_num_threads()}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    time_parser = commands.add_parser("time", help="per-call forward+backward milliseconds")
    time_parser.add_argument("--input", required=True, help=".npy signal, the input (gets the gradient)")
    time_parser.add_argument("--target", required=True, help=".npy signal, the target")
    time_parser.add_argument("--repeats", type=int, default=20)
    time_parser.set_defaults(run=timing)
    golden_parser = commands.add_parser("golden", help="values and gradients for (input, target) pairs")
    golden_parser.add_argument("--inputs", required=True, help=".npz with 'inputs' and 'targets'")
    golden_parser.add_argument("--out", required=True, help=".npz to write")
    golden_parser.set_defaults(run=golden)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
