"""Write study/data/digits.npz, the handwritten digits the `digits` dataset trains on, from scikit-learn's copy.

    pip install scikit-learn && python benchmarks/digits_npz.py [--out study/data/digits.npz]

Run once; the file is committed and shipped in the wheel, so the package needs no scikit-learn (whose import
also loads joblib, pandas and scipy). It holds `images` (1797, 8, 8) uint8 with the grey levels 0..16 and
`targets` (1797,) uint8, in `sklearn.datasets.load_digits()`'s order; tests/test_digits.py checks that they
equal it exactly. The data's licence and origin: study/data/digits.LICENSE.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "study" / "data" / "digits.npz"


def arrays() -> dict[str, np.ndarray]:
    """scikit-learn's digits as the two uint8 arrays the package ships (refused if any value would change)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    images, targets = raw.images.astype(np.uint8), raw.target.astype(np.uint8)
    if not (np.array_equal(images, raw.images) and np.array_equal(targets, raw.target)):
        raise SystemExit("load_digits() holds values outside 0..255 or non-integers: not the expected data")
    return {"images": images, "targets": targets}


def main() -> None:
    """Write the file and say what it holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    data = arrays()
    np.savez_compressed(out, **data)
    print(f"wrote {out} ({out.stat().st_size} bytes): images {data['images'].shape} "
          f"levels {data['images'].min()}..{data['images'].max()}, targets {np.bincount(data['targets']).tolist()}")


if __name__ == "__main__":
    main()
