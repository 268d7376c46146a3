"""PerceptualLoss's fused FFT path on the compiled kernels of :mod:`._native` (float32, CPU).

The same computation as ``BatchedDistance`` in :mod:`._batched` (the batched torch path, which
runs wherever these kernels do not: other dtypes, other devices, no C compiler; see
:func:`.perceptual.choose_path`), with the same cosine floor and slopes, and each step of a band
block one pass over memory and multi-threaded:

- ``product_real``: the signal's spectrum times a block of filter spectra, folded onto
  ``n_fft / stride`` bins before the inverse FFT. The samples ``y[0], y[s], y[2s], ...`` of a
  signal of ``n`` samples are the inverse FFT of length ``n / s`` of its spectrum folded onto
  ``n / s`` bins (the aliasing of sampling), divided by ``s``; so stride ``s`` costs about ``1/s``
  of the inverse transforms.
- ``rows``: rectify, compress, weight, accumulate the similarity's sums in float64, and keep what
  the backward needs, in one pass.
- ``combine`` and ``adjoint``: the backward, ``dL/dy`` per band, then the adjoint of the
  filtering summed over bands.

Items run one at a time, so an item's value does not depend on the rest of the batch.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import torch

from . import _batched
from ._native import NativeKernels

BAND_CHUNK = 32  # bands per block: a block's arrays stay in cache


class Workspace:
    """The large per-call arrays (the backward's ``p`` and ``q``, a per-call target's features),
    kept from call to call and handed out again once no graph can still read them.

    A fresh 18 MB array per call (the post's settings) is a fresh set of pages for the kernel to
    fault in, and that measured as up to half the call. An array saved for a backward is reused
    only when its graph is gone or its backward has run (``saved_tensors`` then raises), so a
    graph kept with ``retain_graph=True`` keeps its own arrays. Per thread, at most
    ``SLOTS`` sets; the memory stays with the loss module between calls.
    """

    SLOTS = 2

    def __init__(self):
        self._local = threading.local()

    def __reduce__(self):  # a copied or pickled loss starts with an empty workspace
        return (Workspace, ())

    def _slots(self) -> list:
        if not hasattr(self._local, "slots"):
            self._local.slots = []
        return self._local.slots

    @staticmethod
    def _free(owner) -> bool:
        context = owner() if owner is not None else None
        if context is None:
            return True
        try:
            context.saved_tensors
        except RuntimeError:  # "Trying to backward through the graph a second time": released
            return True
        return False

    def take(self, purpose: str, shape: tuple[int, ...], count: int, dtype: torch.dtype) -> list[torch.Tensor]:
        """``count`` arrays of ``shape`` for ``purpose``, reused if a free set for it exists."""
        key = (purpose, shape, count, dtype)
        slots = self._slots()
        for slot in slots:
            if slot["key"] == key and self._free(slot["owner"]):
                slot["owner"] = None
                return slot["arrays"]
        arrays = [torch.empty(shape, dtype=dtype) for _ in range(count)]
        slots.insert(0, {"key": key, "arrays": arrays, "owner": None})
        stale = {id(slot) for slot in [slot for slot in slots if slot["key"][0] == purpose][self.SLOTS:]}
        slots[:] = [slot for slot in slots if id(slot) not in stale]
        return arrays

    def hold(self, arrays: list[torch.Tensor], context) -> None:
        """Marks ``arrays`` as saved by ``context`` (an autograd context) until its graph is done."""
        for slot in self._slots():
            if slot["arrays"] is arrays:
                slot["owner"] = weakref.ref(context)


@dataclass(frozen=True)
class Plan:
    """One call's geometry and filters. ``frames``: outputs at stride 1 (``time + taps + 1``);
    ``spectra``: the filters' spectra for ``n_fft`` ``(bands, n_fft/2 + 1)``; ``weights``: ``(bands, 1)``."""

    n_fft: int
    frames: int
    stride: int
    similarity: str  # "cosine" or "mse"
    kernels: NativeKernels
    spectra: torch.Tensor = field(compare=False)
    weights: torch.Tensor = field(compare=False)
    workspace: Workspace = field(default_factory=Workspace, compare=False)

    @property
    def n_bands(self) -> int:
        return self.spectra.shape[0]

    @property
    def folded(self) -> int:
        return self.n_fft // self.stride

    @property
    def out_frames(self) -> int:
        return (self.frames - 1) // self.stride + 1


def decimated_fft_length(frames: int, stride: int, fft_length) -> int:
    """An FFT length of at least ``frames``, a multiple of ``stride`` whose quotient is fast."""
    return stride * fft_length(-(-frames // stride))


def _band_blocks(plan: Plan) -> list[slice]:
    return [slice(start, min(plan.n_bands, start + BAND_CHUNK)) for start in range(0, plan.n_bands, BAND_CHUNK)]


class _BlockArrays:
    """One band block's spectra and signals, reused block after block (they stay in cache)."""

    def __init__(self, plan: Plan):
        rows = min(plan.n_bands, BAND_CHUNK)
        self.spectra = plan.workspace.take("block spectra", (rows, plan.folded // 2 + 1), 1, plan.spectra.dtype)[0]
        self.signals = plan.workspace.take("block signals", (rows, plan.folded), 1, plan.weights.dtype)[0]
        self.plan = plan

    def filtered(self, spectrum: torch.Tensor, bands: slice) -> torch.Tensor:
        """The filtered signals of a block of bands, at the stride: ``(bands, n_fft / stride)``."""
        plan = self.plan
        spectra = plan.spectra[bands]
        rows = spectra.shape[0]
        product = plan.kernels.product_real(spectrum, spectra, plan.n_fft, plan.stride, out=self.spectra[:rows])
        return torch.fft.irfft(product, n=plan.folded, out=self.signals[:rows])

    def gradient_spectra(self, p, q, a: float, b: float) -> torch.Tensor:
        """The rfft of a block's ``dL/dy = a p + b q`` (at the stride, zero-padded to ``n_fft / stride``)."""
        rows, plan = p.shape[0], self.plan
        gradient = plan.kernels.combine(p, q, a, b, plan.folded, out=self.signals[:rows])
        return torch.fft.rfft(gradient, out=self.spectra[:rows])


def features(x: torch.Tensor, plan: Plan, scratch: bool = False) -> torch.Tensor:
    """The feature map of ``x`` ``(signals, time)``, forward only: ``(signals, bands, out_frames)``.

    ``scratch=True`` writes it into the workspace: only for a map used and dropped within one call.
    """
    shape = (x.shape[0], plan.n_bands, plan.out_frames)
    out = plan.workspace.take("target", shape, 1, x.dtype)[0] if scratch else x.new_empty(shape)
    blocks = _BlockArrays(plan)
    for item in range(x.shape[0]):
        spectrum = torch.fft.rfft(x[item], n=plan.n_fft)
        for bands in _band_blocks(plan):
            plan.kernels.rows(blocks.filtered(spectrum, bands), None, plan.weights[bands], "features", 0.0,
                              out[item, bands], None, None)
    return out


class CompiledDistance(torch.autograd.Function):
    """Per-item distance between the features of ``x`` ``(signals, time)`` and fixed target
    features ``(signals, bands, out_frames)``, with an analytic backward.

    Forward keeps, per band, what ``dL/dy`` is made of: for the cosine ``p = target slope`` and
    ``q = features slope`` (``dL/dy = a p + b q`` with per-item ``a`` and ``b`` known once the
    sums are), for the MSE ``p = dL/dy`` itself.
    """

    @staticmethod
    def forward(ctx, x, target, plan):
        signals = x.shape[0]
        size = plan.n_bands * plan.out_frames
        arrays = plan.workspace.take("backward", (signals, plan.n_bands, plan.out_frames),
                                     2 if plan.similarity == "cosine" else 1, x.dtype)
        p, q = arrays[0], (arrays[1] if len(arrays) > 1 else None)
        # The similarity's sums in float64: over millions of terms a float32 sum drifts by 1e-4.
        sums = torch.zeros(signals, 3, dtype=torch.float64)
        blocks = _BlockArrays(plan)
        for item in range(signals):
            spectrum = torch.fft.rfft(x[item], n=plan.n_fft)
            for bands in _band_blocks(plan):
                plan.kernels.rows(blocks.filtered(spectrum, bands), target[item, bands], plan.weights[bands],
                                  plan.similarity, _batched.mse_slope(size), p[item, bands],
                                  None if q is None else q[item, bands], sums[item])
        if plan.similarity == "cosine":
            value, a, b = _batched.cosine_value_and_slopes(sums[:, 0], sums[:, 1], sums[:, 2])
            value = value.to(x.dtype)
        else:  # the kernels wrote dL/dy itself, the slope included, into p
            value = (sums[:, 0] / size).to(x.dtype)
            a, b = torch.ones_like(sums[:, 0]), torch.zeros_like(sums[:, 0])
        ctx.save_for_backward(p, q, a, b, x, target)
        plan.workspace.hold(arrays, ctx)
        ctx.plan, ctx.length = plan, x.shape[-1]
        return value

    @staticmethod
    def backward(ctx, grad_value):
        p, q, a, b, x, target = ctx.saved_tensors
        plan = ctx.plan
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain torch path instead
            return _batched.twice_differentiable_gradient(x, target, plan.spectra, plan.weights, grad_value,
                                                          _batched.Geometry(plan.n_fft, plan.frames, plan.stride,
                                                                            plan.similarity)), None, None
        a, b = (a * grad_value).tolist(), (b * grad_value).tolist()
        grad_x = p.new_empty(p.shape[0], ctx.length)
        blocks = _BlockArrays(plan)
        for item in range(p.shape[0]):
            adjoint = torch.zeros(plan.spectra.shape[-1], dtype=plan.spectra.dtype)
            for bands in _band_blocks(plan):
                gradient_spectra = blocks.gradient_spectra(p[item, bands], None if q is None else q[item, bands],
                                                           a[item], b[item])
                plan.kernels.adjoint(gradient_spectra, plan.spectra[bands], plan.n_fft, plan.stride, adjoint)
            # Adjoint of "rfft of x": the scale factors of rfft's and irfft's adjoints cancel here.
            grad_x[item] = torch.fft.irfft(adjoint, n=plan.n_fft)[: ctx.length]
        return grad_x, None, None
