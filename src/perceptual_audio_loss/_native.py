"""The compiled kernels of ``_kernels.c``, built with the system's C compiler at first use.

No build step and no dependency beyond a C compiler: the source is compiled once per source,
flags, compiler and CPU into a cache folder (about a second), loaded with :mod:`ctypes`, and
called on the data of float32 CPU tensors (ctypes releases the GIL during the call). The loops
run on OpenMP threads, as many as ``torch.get_num_threads()``; the library links against the
``libgomp.so.1`` torch has already loaded, so torch and the kernels share one thread pool.

Where no compiler works, :func:`native_kernels` says so once (a ``RuntimeWarning``) and returns
``None``; the loss then runs its torch path. ``PERCEPTUAL_AUDIO_LOSS_NATIVE=0`` turns the
compiled kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("_kernels.c")
ENVIRONMENT_SWITCH = "PERCEPTUAL_AUDIO_LOSS_NATIVE"
# No -ffast-math: the kernels' order of operations is part of their accuracy (log1p's rounding
# correction) and of their determinism. -fno-trapping-math lets selects vectorize (as torch builds).
FLAGS = ("-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-std=gnu11")
# Tried in this order: threads and the CPU's own vector units, then without each.
OPTIONAL_FLAG_SETS = (("-fopenmp", "-march=native"), ("-fopenmp",), ("-march=native",), ())
# What rows() computes, as _kernels.c's enum { COSINE, MSE, FEATURES } numbers it.
SIMILARITY_CODES = {"cosine": 0, "mse": 1, "features": 2}
# What the kernels compute on: float32 arrays in the CPU's memory.
DEVICE_TYPE = "cpu"
DTYPE = torch.float32

_float_p = ctypes.POINTER(ctypes.c_float)
_double_p = ctypes.POINTER(ctypes.c_double)
_long, _int, _float = ctypes.c_long, ctypes.c_int, ctypes.c_float
_SIGNATURES = {
    "pal_rows": (_float_p, _long, _float_p, _long, _float_p, _int, _int, _int, _float, _float_p, _float_p, _long,
                 _double_p, _int),
    "pal_product_real": (_float_p, _float_p, _long, _int, _int, _int, _float_p, _long, _int),
    "pal_combine": (_float_p, _float_p, _long, _int, _int, _float, _float, _float_p, _long, _int, _int),
    "pal_adjoint": (_float_p, _long, _float_p, _long, _int, _int, _int, _float_p, _int),
}


def _cpu_description() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(wanted))) or platform.machine()


def _cache_folder() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "perceptual_audio_loss"


def _compile(compiler: str, flags: tuple[str, ...], folder: Path) -> Path:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), " ".join(flags).encode(), version.encode(),
                                     _cpu_description().encode()])).hexdigest()[:16]
    library = folder / f"kernels_{key}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    # Compile beside the final name and rename: processes compiling at once never load half a file.
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        built = Path(scratch) / library.name
        subprocess.run([compiler, *flags, str(SOURCE), "-o", str(built)], capture_output=True, text=True, check=True)
        os.replace(built, library)
    return library


def _load() -> tuple[ctypes.CDLL, tuple[str, ...]]:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC)")
    errors = []
    for folder in (_cache_folder(), Path(tempfile.gettempdir()) / f"perceptual_audio_loss_{os.getuid()}"):
        for optional in OPTIONAL_FLAG_SETS:
            flags = FLAGS + optional
            try:
                library = ctypes.CDLL(str(_compile(compiler, flags, folder)))
            except (OSError, subprocess.CalledProcessError) as error:
                errors.append(getattr(error, "stderr", None) or str(error))
                continue
            for name, arguments in _SIGNATURES.items():
                getattr(library, name).argtypes = arguments
                getattr(library, name).restype = None
            return library, flags
    raise RuntimeError("compiling the fused kernels failed:\n" + "\n".join(errors[-2:]))


@lru_cache(maxsize=1)
def native_kernels() -> NativeKernels | None:
    """The compiled kernels, or ``None`` (once warned) where they cannot be built or are turned off."""
    if os.environ.get(ENVIRONMENT_SWITCH, "1") == "0":
        return None
    try:
        return NativeKernels(*_load())
    except Exception as error:  # any failure to build or load means: use the torch path
        warnings.warn(f"perceptual_audio_loss: using the slower torch path ({error})", RuntimeWarning, stacklevel=2)
        return None


def kernels_available() -> bool:
    """Whether :func:`native_kernels` has kernels to give (building them at the first call)."""
    return native_kernels() is not None


def _floats(tensor: torch.Tensor):
    if torch.is_complex(tensor):
        tensor = torch.view_as_real(tensor)
    return ctypes.cast(tensor.data_ptr(), _float_p)


def _rows_of(tensor: torch.Tensor) -> torch.Tensor:
    """A ``(rows, n)`` block with unit inner stride (checked: the kernels index rows by stride)."""
    if tensor.dim() != 2 or tensor.stride(-1) != 1:
        raise ValueError(f"native kernels take rows with unit stride, got shape {tuple(tensor.shape)} "
                         f"strides {tensor.stride()}")
    return tensor


def _output(out: torch.Tensor | None, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    if out is None:
        return torch.empty(shape, dtype=dtype)
    if tuple(out.shape) != shape or out.dtype != dtype or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {dtype} array of shape {shape}, got {out.dtype} {tuple(out.shape)}")
    return out


class NativeKernels:
    """The compiled steps of one item's band block (float32, CPU). Shapes as in :mod:`._compiled`."""

    def __init__(self, library: ctypes.CDLL, flags: tuple[str, ...]):
        self.library = library
        self.flags = flags

    def product_real(self, spectrum: torch.Tensor, spectra: torch.Tensor, n_fft: int, stride: int,
                     out: torch.Tensor | None = None) -> torch.Tensor:
        """``spectrum`` (bins,) times each band's spectrum, folded onto ``n_fft / stride`` points."""
        spectra = _rows_of(spectra)
        shape = (spectra.shape[0], n_fft // stride // 2 + 1)
        out = _output(out, shape, spectra.dtype)
        self.library.pal_product_real(_floats(spectrum.contiguous()), _floats(spectra), spectra.stride(0),
                                      spectra.shape[0], n_fft, stride, _floats(out), out.stride(0),
                                      torch.get_num_threads())
        return out

    def rows(self, filtered, target, weights, similarity, mse_scale, p, q, sums) -> None:
        """Features of ``filtered``'s first ``frames`` columns into ``p`` (``similarity="features"``),
        or the similarity's sums added to ``sums`` and the backward's arrays into ``p`` and ``q``;
        ``frames`` is ``p``'s width (the outputs at the stride)."""
        filtered, p = _rows_of(filtered), _rows_of(p)
        target = None if target is None else _rows_of(target)
        q = None if q is None else _rows_of(q)
        frames = p.shape[1]
        if frames > filtered.shape[1]:
            raise ValueError(f"p is {frames} frames wide, filtered only {filtered.shape[1]}")
        if q is not None and q.stride(0) != p.stride(0):
            raise ValueError("p and q must have the same row stride")
        self.library.pal_rows(
            _floats(filtered), filtered.stride(0), None if target is None else _floats(target),
            0 if target is None else target.stride(0), _floats(weights.contiguous()), p.shape[0], frames,
            SIMILARITY_CODES[similarity], mse_scale, _floats(p), None if q is None else _floats(q), p.stride(0),
            None if sums is None else ctypes.cast(sums.data_ptr(), _double_p), torch.get_num_threads(),
        )

    def combine(self, p, q, a: float, b: float, length: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """``a p + b q`` per row, zero-padded to ``length`` columns (``q`` may be ``None``)."""
        p = _rows_of(p)
        q = None if q is None else _rows_of(q)
        out = _output(out, (p.shape[0], length), p.dtype)
        self.library.pal_combine(_floats(p), None if q is None else _floats(q), p.stride(0), p.shape[0], p.shape[1],
                                 float(a), float(b), _floats(out), out.stride(0), length, torch.get_num_threads())
        return out

    def adjoint(self, gradient_spectra, spectra, n_fft: int, stride: int, adjoint: torch.Tensor) -> None:
        """Adds ``sum over bands of conj(H) G`` (``G`` unfolded from ``n_fft / stride`` points) to ``adjoint``."""
        gradient_spectra, spectra = _rows_of(gradient_spectra), _rows_of(spectra)
        self.library.pal_adjoint(_floats(gradient_spectra), gradient_spectra.stride(0), _floats(spectra),
                                 spectra.stride(0), spectra.shape[0], n_fft, stride, _floats(adjoint),
                                 torch.get_num_threads())
