"""Data pickles read without running code: numpy arrays, numpy scalars and builtin containers, nothing else.

CIFAR-10's python batches and NAS-Bench-201's ImageNet16 files are pickles, and they come from data roots and
study folders that other people fill (`<study_dir>/cache/cifar10` travels with a study). `pickle.load` calls
whatever a file names, so a crafted file runs code when a study trains; this unpickler resolves only the
handful of names a pickled ndarray needs and refuses every other one in one line.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from study.data.base import DataError


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Python 3's pickling of bytes under protocol 2 (`_codecs.encode(text, "latin1")`), for latin-1 alone."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode("latin1")


def _frombuffer(buffer: bytes | bytearray, dtype: str = "float") -> np.ndarray:
    """`numpy.frombuffer` over bytes for a plain numeric dtype: the portable way to pickle pixels that any numpy
    reads (benchmarks/gpu_bundle.py writes its CIFAR-10 subset so)."""
    if not isinstance(buffer, (bytes, bytearray)) or np.dtype(dtype).kind not in "biuf":
        raise pickle.UnpicklingError(f"numpy.frombuffer of {type(buffer).__name__} as {dtype!r}")
    return np.frombuffer(buffer, dtype)


def _numpy_names() -> dict[tuple[str, str], Any]:
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 moved numpy.core to numpy._core
    names = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("numpy", "frombuffer"): _frombuffer}
    for module in ("numpy.core", "numpy._core"):  # files written by numpy 1 name numpy.core
        names[(f"{module}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
        names[(f"{module}.multiarray", "scalar")] = core.multiarray.scalar
        if hasattr(core.numeric, "_frombuffer"):  # protocol 5 out-of-band arrays
            names[(f"{module}.numeric", "_frombuffer")] = core.numeric._frombuffer
    return names


ALLOWED: dict[tuple[str, str], Any] = {
    **_numpy_names(),
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset, ("__builtin__", "bytearray"): bytearray,
}

# What a damaged or hostile pickle can raise while being read; each becomes one DataError line.
BROKEN = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
          ImportError, MemoryError, RecursionError, OverflowError, UnicodeError)


class Refused(pickle.UnpicklingError):
    """The pickle names a global outside the allowed few."""


class DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names in ALLOWED."""

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object for `module.name`; Refused for any other name, imported or not."""
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise Refused(f"it names {module}.{name}, which a data file never needs (a pickle that runs code "
                          "or comes from other software); nothing of it was run") from None


def load_data_pickle(path: Path, dataset: str) -> Any:
    """The contents of the pickle at `path` (Python 2 strings read as latin-1); DataError in one line otherwise."""
    try:
        with open(path, "rb") as f:
            return DataUnpickler(f, encoding="latin1").load()
    except Refused as e:
        raise DataError(f"{dataset}: refusing {path}: {e}; replace the file with the dataset's own") from None
    except (OSError, *BROKEN) as e:
        why = str(e).splitlines()[0][:200] if str(e) else ""
        raise DataError(f"{dataset}: cannot read {path} ({type(e).__name__}: {why}); replace the file") from None
