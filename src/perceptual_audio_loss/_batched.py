"""PerceptualLoss's FFT path as a few batched torch operations: the path CUDA runs.

Every signal and every band is filtered at once, in blocks sized by a memory budget rather than
by a Python loop per item and band chunk, so a call dispatches a few dozen operations whatever
the batch (on a GPU, a few dozen kernel launches). On the CPU the same code runs with
``compiled=False``, for other dtypes than float32, and where no C compiler is found (the table of
:func:`.perceptual.choose_path`), so that counting its operations there counts CUDA's launches.

Memory: the forward keeps only the signal's spectrum and two numbers per signal; the backward
filters again, block by block, instead of keeping features and slopes (two floats per band and
frame per signal, 2.9 GB for the post's configuration on 8 x 4 s at 44.1 kHz).

Blocks split the bands the same way for every signal, whatever the batch, and each signal's sums
are accumulated in float64 block by block in the same order; so a signal's value does not depend
on the rest of its batch beyond the rounding of the batched FFTs (measured equal bit for bit on
the CPU; ``tests/library/test_device_path.py``'s
``test_a_signal_does_not_depend_on_its_batch_on_the_batched_path`` holds it to 1e-6 relative).

The compiled kernels' path (:mod:`._compiled`) computes the same distance and shares this module's
cosine floor and slopes (:func:`cosine_value_and_slopes`, :func:`mse_slope`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

COSINE_EPS = 1e-8  # the floor of the norms, as F.cosine_similarity's default eps
# One block's filtered signals, (signals x bands x n_fft) floats, are kept under this many bytes;
# a block's working set is about four such arrays. 256 MiB holds the post's whole configuration
# at batch 8 (8 x 512 bands x 9216 points x 4 bytes = 151 MB) in one block, and caps the post's
# filters on 8 x 4 s at 44.1 kHz at about 1 GiB of working memory.
BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Geometry:
    """One call's sizes: FFT length, outputs at stride 1, stride, similarity, block budget."""

    n_fft: int
    frames: int
    stride: int
    similarity: str  # "cosine" or "mse"
    block_bytes: int = BLOCK_BYTES

    def blocks(self, signals: int, n_bands: int, itemsize: int) -> list[tuple[slice, slice]]:
        """``(signals, bands)`` slices covering every signal and band within the budget.

        The bands are split the same way whatever ``signals`` is; whole-band blocks then take as
        many signals as fit.
        """
        rows = max(1, self.block_bytes // (self.n_fft * itemsize))
        band_blocks = -(-n_bands // rows)
        per_block = -(-n_bands // band_blocks)
        bands = [slice(start, min(n_bands, start + per_block)) for start in range(0, n_bands, per_block)]
        together = max(1, rows // per_block) if band_blocks == 1 else 1
        items = [slice(start, min(signals, start + together)) for start in range(0, signals, together)]
        return [(i, b) for i in items for b in bands]


def filtered(spectrum: torch.Tensor, spectra: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """The filter outputs at the stride: ``(signals, bins)`` x ``(bands, bins)`` -> ``(signals, bands, out_frames)``.

    Differentiable: the reference for the fused function's backward and its double backward.
    """
    bands = torch.fft.irfft(spectrum[:, None, :] * spectra, n=geometry.n_fft)
    return bands[..., : geometry.frames : geometry.stride]


def features(x: torch.Tensor, spectra: torch.Tensor, weights: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """The feature map ``log1p(relu(filtered)) * weights`` of ``x`` ``(signals, time)``, block by
    block: ``(signals, bands, out_frames)``. Forward only when ``x`` needs no gradient."""
    spectrum = torch.fft.rfft(x, n=geometry.n_fft)
    out_frames = (geometry.frames - 1) // geometry.stride + 1
    if torch.is_grad_enabled() and x.requires_grad:
        return torch.log1p(filtered(spectrum, spectra, geometry).clamp_min(0.0)) * weights
    blocks = geometry.blocks(x.shape[0], spectra.shape[0], x.element_size())
    out = x.new_empty(x.shape[0], spectra.shape[0], out_frames) if len(blocks) > 1 else None
    for items, bands in blocks:
        block = filtered(_part(spectrum, items), _part(spectra, bands), geometry).clamp_min_(0.0)
        mapped = block.log1p_().mul_(_part(weights, bands))
        if out is None:
            return mapped
        _part(_part(out, items), bands, 1).copy_(mapped)
    return out


def similarity(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Minus the cosine similarity, or the mean squared difference, of ``(signals, ...)`` maps, per
    signal; sums in float64 (over millions of terms a float32 dot product drifts by 1e-5)."""
    a, b = a.flatten(1), b.flatten(1)
    if kind == "cosine":
        dot = torch.sum(a * b, dim=1, dtype=torch.float64)
        a_norm = torch.sum(a * a, dim=1, dtype=torch.float64).sqrt().clamp_min(COSINE_EPS)
        b_norm = torch.sum(b * b, dim=1, dtype=torch.float64).sqrt().clamp_min(COSINE_EPS)
        return (-dot / (a_norm * b_norm)).to(a.dtype)
    return (torch.sum((a - b) ** 2, dim=1, dtype=torch.float64) / a.shape[1]).to(a.dtype)


class BatchedDistance(torch.autograd.Function):
    """Per-signal distance between the features of ``x`` ``(signals, time)`` and fixed target
    features ``(signals, bands, out_frames)``, with an analytic backward that filters again.
    ``spectra`` are the filters' spectra ``(bands, bins)``, ``conjugate`` their complex conjugate
    (kept with them, not made at every call).

    The gradient of the distance with respect to the features is ``a target + b features`` with
    per-signal ``a`` and ``b`` (cosine: ``a = -1 / (|f| |t|)``, ``b = dot / (|f|^3 |t|)``; mean
    squared difference: ``a = -2 / n``, ``b = 2 / n``); through the compression that becomes
    ``dL/dy = (a t + b f) w / (1 + y)`` where ``y > 0``, and 0 elsewhere; and the adjoint of the
    filtering is a correlation with the same filters, by FFT.

    Asked for a graph of its gradient (``create_graph=True``), the backward differentiates the
    plain torch computation instead, so second derivatives (a gradient penalty) are exact.
    """

    @staticmethod
    def forward(ctx, x, spectra, conjugate, weights, target, geometry):
        spectrum = torch.fft.rfft(x, n=geometry.n_fft)
        # Per signal: dot and |f|^2 (cosine) or the squared difference (mse), then |t|^2 once.
        sums = torch.zeros(2, x.shape[0], dtype=torch.float64, device=x.device)
        for items, bands in geometry.blocks(x.shape[0], spectra.shape[0], x.element_size()):
            block = filtered(_part(spectrum, items), _part(spectra, bands), geometry).clamp_min_(0.0)
            mapped = block.log1p_().mul_(_part(weights, bands))
            _accumulate(sums[:, items], mapped, _part(_part(target, items), bands, 1), geometry.similarity)
        target_energy = torch.sum(target * target, dim=(1, 2), dtype=torch.float64)
        value, a, b = _value_and_slopes(sums, target_energy, target[0].numel(), geometry.similarity)
        ctx.save_for_backward(x, spectrum, spectra, conjugate, weights, target, a.to(x.dtype), b.to(x.dtype))
        ctx.geometry = geometry
        return value.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_value):
        x, spectrum, spectra, conjugate, weights, target, a, b = ctx.saved_tensors
        geometry = ctx.geometry
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain path instead
            return twice_differentiable_gradient(x, target, spectra, weights, grad_value, geometry), *[None] * 5
        a, b = (a * grad_value)[:, None, None], (b * grad_value)[:, None, None]
        adjoint = torch.zeros_like(spectrum)
        for items, bands in geometry.blocks(x.shape[0], spectra.shape[0], x.element_size()):
            block = filtered(_part(spectrum, items), _part(spectra, bands), geometry).clamp_min_(0.0)
            band_weights = _part(weights, bands)
            slope = torch.where(block > 0.0, band_weights / (1.0 + block), 0.0)
            mapped = block.log1p_().mul_(band_weights)
            # dL/dy = (a t + b f) * slope, with a and b per signal
            gradient = mapped.mul_(_part(b, items)).addcmul_(_part(_part(target, items), bands, 1), _part(a, items))
            spectra_of_gradient = torch.fft.rfft(_spread(gradient.mul_(slope), geometry), n=geometry.n_fft)
            _part(adjoint, items).add_((spectra_of_gradient.mul_(_part(conjugate, bands))).sum(dim=1))
        # Adjoint of "rfft of x": the scale factors of rfft's and irfft's adjoints cancel here.
        return torch.fft.irfft(adjoint, n=geometry.n_fft)[:, : x.shape[-1]], None, None, None, None, None


def twice_differentiable_gradient(x, target, spectra, weights, grad_value, geometry: Geometry) -> torch.Tensor:
    """The gradient through plain torch operations, itself differentiable: what a backward asked
    for a graph (``create_graph=True``, a gradient penalty) returns instead of the fused one."""
    with torch.enable_grad():
        value = similarity(features(x, spectra, weights, geometry), target, geometry.similarity)
        return torch.autograd.grad(value, x, grad_value, create_graph=True)[0]


def _part(tensor: torch.Tensor, part: slice, dim: int = 0) -> torch.Tensor:
    """``tensor`` sliced along ``dim``; the tensor itself when the slice covers it (one op fewer)."""
    if part.start == 0 and part.stop >= tensor.shape[dim]:
        return tensor
    return tensor.narrow(dim, part.start, part.stop - part.start)


def _accumulate(sums: torch.Tensor, mapped: torch.Tensor, target: torch.Tensor, kind: str) -> None:
    """Add a block's terms to the per-signal sums ``(2, signals)``: dot and |f|^2 (cosine) or the
    squared difference (mse), each block's float32 terms summed in float64."""
    dims = (1, 2)
    if kind == "cosine":
        sums[0].add_(torch.sum(mapped * target, dim=dims, dtype=torch.float64))
        sums[1].add_(torch.sum(mapped * mapped, dim=dims, dtype=torch.float64))
    else:
        sums[0].add_(torch.sum((mapped - target) ** 2, dim=dims, dtype=torch.float64))


def cosine_value_and_slopes(dot: torch.Tensor, feature_energy: torch.Tensor, target_energy: torch.Tensor):
    """Minus the cosine similarity per signal, and the ``a``, ``b`` of its gradient
    ``dL/df = a t + b f``: ``a = -1 / (|f| |t|)``, ``b = dot / (|f|^3 |t|)`` (0 where ``|f|`` is at
    the floor), from the float64 sums ``dot = f.t``, ``|f|^2`` and ``|t|^2``."""
    f_norm = feature_energy.sqrt().clamp_min(COSINE_EPS)
    t_norm = target_energy.sqrt().clamp_min(COSINE_EPS)
    value = -dot / (f_norm * t_norm)
    a = -1.0 / (f_norm * t_norm)
    b = torch.where(f_norm > COSINE_EPS, dot / (f_norm**3 * t_norm), 0.0)
    return value, a, b


def mse_slope(size: int) -> float:
    """``d/df`` of the mean squared difference of ``size`` terms is ``mse_slope(size) (f - t)``."""
    return 2.0 / size


def _value_and_slopes(sums: torch.Tensor, target_energy: torch.Tensor, size: int, kind: str):
    """The per-signal value and the ``a``, ``b`` of ``dL/df = a t + b f`` (float64)."""
    if kind == "cosine":
        return cosine_value_and_slopes(sums[0], sums[1], target_energy)
    value = sums[0] / size
    return value, torch.full_like(value, -mse_slope(size)), torch.full_like(value, mse_slope(size))


def _spread(gradient: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """A gradient at the stride back on every sample (zeros between), for the FFT of the adjoint."""
    if geometry.stride == 1:
        return gradient
    spread = gradient.new_zeros(*gradient.shape[:-1], geometry.frames)
    spread[..., :: geometry.stride] = gradient
    return spread
