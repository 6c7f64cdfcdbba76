"""Untrusted data pickles (CIFAR-10 batches, ImageNet16 files): arrays and containers load, code never runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from study.data import DataError, build_dataset
from tests.image_fixtures import write_tiny_cifar, write_tiny_imagenet16


class Planted:
    """A pickle payload whose loading would create a marker file (what a malicious data file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, payload: object) -> None:
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": payload}, f)


def _missing_module_pickle(path: Path) -> None:
    # GLOBAL opcode naming a module no installation has, then an empty tuple and REDUCE
    path.write_bytes(b"\x80\x02cno_such_module_xyz\nmake\nq\x00)R.")


READERS = {
    "cifar10": (write_tiny_cifar, lambda root: root / "cifar-10-batches-py" / "data_batch_2",
                lambda root: build_dataset("cifar10", data_root=str(root), download=False)),
    "imagenet16": (write_tiny_imagenet16, lambda root: root / "train_data_batch_2",
                   lambda root: build_dataset("imagenet16", data_root=str(root))),
}


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_crafted_reduce_does_not_run(name, tmp_path):
    write, victim, build = READERS[name]
    root, marker = tmp_path / "data", tmp_path / "ran"
    write(root)
    _plant(victim(root), Planted(marker))
    with pytest.raises(DataError, match=r"posix\.system|os\.system") as e:
        build(root)
    assert not marker.exists(), "the pickle ran code"
    assert "\n" not in str(e.value) and victim(root).name in str(e.value) and "replace" in str(e.value)


@pytest.mark.parametrize("name", sorted(READERS))
def test_a_pickle_naming_a_missing_module_is_one_line(name, tmp_path):
    write, victim, build = READERS[name]
    root = tmp_path / "data"
    write(root)
    _missing_module_pickle(victim(root))
    with pytest.raises(DataError, match="no_such_module_xyz") as e:
        build(root)
    assert "\n" not in str(e.value)


def test_arrays_scalars_and_containers_still_load(tmp_path):
    from study.data.pickles import load_data_pickle

    value = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": [1, 2.5, "x", b"y", None, True],
             "c": (np.float32(1.5), np.int64(3)), "d": {1, 2}, "e": np.array(["s"], dtype=object),
             "f": bytearray(b"zz")}
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        got = load_data_pickle(path, "test")
        assert np.array_equal(got["a"], value["a"]) and got["a"].dtype == np.int16
        assert got["b"] == value["b"] and got["c"] == value["c"] and got["d"] == {1, 2}
        assert got["e"].tolist() == ["s"] and got["f"] == bytearray(b"zz")


def test_a_python2_latin1_pickle_loads(tmp_path):
    """The official CIFAR-10 files were written by Python 2: str data read back with encoding latin1."""
    from study.data.pickles import load_data_pickle

    path = tmp_path / "py2"
    # protocol 2 as Python 2 writes a dict with a str key and a (py2) str value
    path.write_bytes(b"\x80\x02}q\x00U\x05labelq\x01U\x03\xe9abq\x02s.")
    assert load_data_pickle(path, "test") == {"label": "\xe9ab"}


class _FromBuffer:
    """Pickles as numpy.frombuffer(raw, dtype), the portable form benchmarks/gpu_bundle.py writes pixels in."""

    def __init__(self, raw: bytes | bytearray, dtype: str) -> None:
        self.raw, self.dtype = raw, dtype

    def __reduce__(self):
        return np.frombuffer, (self.raw, self.dtype)


def test_frombuffer_pixels_load_and_only_as_numbers(tmp_path):
    from study.data.pickles import load_data_pickle

    path = tmp_path / "portable"
    path.write_bytes(pickle.dumps({"data": _FromBuffer(bytearray(range(6)), "uint8")}, protocol=4))
    got = load_data_pickle(path, "test")["data"]
    assert got.dtype == np.uint8 and got.tolist() == list(range(6))
    path.write_bytes(pickle.dumps({"data": _FromBuffer(b"\0" * 8, "O")}, protocol=4))
    with pytest.raises(DataError, match="frombuffer") as e:
        load_data_pickle(path, "test")
    assert "\n" not in str(e.value)
