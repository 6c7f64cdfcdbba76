"""Jigsaw permutation sets: all k! permutations, and a maximal-Hamming subset (Noroozi & Favaro 2016).

A permutation row p says which tile goes in slot i: slot i shows tile p[i]. Class labels are row indices.

`hamming_permutations` follows Algorithm 1 of Noroozi & Favaro: start from one random permutation, then
repeatedly add the not-yet-chosen permutation whose Hamming distance to the chosen set is largest, and
remove it from the candidates. Two criteria for "distance to the set":
- "mean" (default, the paper's): the sum (equivalently the mean) of the distances to the chosen rows;
- "min" (maximin): the smallest distance to a chosen row, ties broken by the sum.
Remaining ties go to the lexicographically first candidate, so the set is a function of the seed alone,
which only picks the starting permutation. Both keep running arrays over all n! candidates that each
step updates with the newly chosen row, so a step costs O(n! * n) vectorised work and no pairwise
matrix is ever built.

Observed for 9 tiles and 1000 permutations (seeds 0 and 1): "mean" gives a mean pairwise distance of
8.008 and a minimum of 2; "min" gives the same mean and a minimum of 5. A random pair of permutations
averages 8 (one fixed point expected), so the greedy gain is in the minimum, which only "min" targets.
"""

from __future__ import annotations

import functools
import logging
import math

from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CRITERIA = ("mean", "min")


def all_permutations(k: int) -> np.ndarray:
    """Return all k! permutations of range(k) in lexicographic order, shape (k!, k), int64."""
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    perms = np.zeros((1, 0), dtype=np.int64)
    for n in range(1, k + 1):
        # Lexicographic perms of range(n): first element v, then the perms of range(n - 1) relabelled
        # onto range(n) minus v. The relabelling i -> i + (i >= v) is increasing, so order is kept.
        blocks = [
            np.concatenate([np.full((len(perms), 1), v, dtype=np.int64), perms + (perms >= v)], axis=1)
            for v in range(n)
        ]
        perms = np.concatenate(blocks, axis=0)
    return perms


def hamming_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the pairwise Hamming distances between rows of a (M, n) and b (N, n), shape (M, N)."""
    return (a[:, None, :] != b[None, :, :]).sum(axis=2)


def _agreement_table(candidates: np.ndarray) -> np.ndarray:
    """Return table[pos * n + value] = (candidates[:, pos] == value) as uint8, shape (n * n, N)."""
    n = candidates.shape[1]
    values = np.arange(n, dtype=candidates.dtype)
    # One row per (position, value): a chosen row's agreements with every candidate are then n uint8
    # row additions, about ten times faster than comparing an (N, n) array and summing its short axis.
    return (candidates.T[:, None, :] == values[None, :, None]).reshape(n * n, -1).view(np.uint8)


@functools.lru_cache(maxsize=8)
def _hamming_set(n_tiles: int, n_perms: int, seed: int, criterion: str) -> np.ndarray:
    candidates = all_permutations(n_tiles)  # (n!, n) in lexicographic order
    table = _agreement_table(candidates)  # (n * n, n!)
    offsets = np.arange(n_tiles) * n_tiles
    n_all = candidates.shape[0]
    chosen = np.empty(n_perms, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(n_all)
    # Work with agreements (n - Hamming distance): the largest sum of distances is the smallest sum of
    # agreements, and the largest min distance the smallest max agreement.
    agree_sum = np.zeros(n_all, dtype=np.int64)
    agree_max = np.zeros(n_all, dtype=np.int64)
    removed = np.iinfo(np.int64).max // 2  # never the argmin, and safe to keep adding to
    for i in range(1, n_perms):
        prev = chosen[i - 1]
        rows = table[offsets + candidates[prev]]  # (n, n!)
        agree = rows.sum(axis=0, dtype=np.uint8)  # (n!,) agreements with the new row, at most n
        agree_sum += agree
        agree_sum[prev] = removed
        if criterion == "mean":
            score = agree_sum
        else:
            np.maximum(agree_max, agree, out=agree_max)
            # Lexicographic (max, sum) as one integer: the sum of agreements is below n * n_perms + 1.
            score = agree_max * (n_tiles * n_perms + 1) + agree_sum
        chosen[i] = int(np.argmin(score))  # argmin returns the first minimum: lexicographic tie-break
    return candidates[chosen]


def hamming_permutations(n_tiles: int = 9, n_perms: int = 1000, seed: int = 0, criterion: str = "mean") -> np.ndarray:
    """Return a greedy maximal-Hamming set of n_perms distinct permutations, shape (n_perms, n_tiles)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if not 1 <= n_tiles <= 9:
        # The candidates and the (n * n, n!) agreement table grow as n!: 9 tiles need about 30 MB.
        raise ValueError(f"n_tiles must be in [1, 9], got {n_tiles}")
    if not 1 <= n_perms <= math.factorial(n_tiles):
        raise ValueError(f"n_perms must be in [1, {n_tiles}!], got {n_perms}")
    perms = _hamming_set(n_tiles, n_perms, seed, criterion)
    log.debug("hamming set: %d of %d! permutations, seed %d, %s", n_perms, n_tiles, seed, criterion)
    return perms.copy()  # the cached array must not be mutated by callers


UNNAS_FILE = Path(__file__).resolve().parent / "data" / "hamming_perms_1000_patches_9_max.npy"


def unnas_permutations() -> np.ndarray:
    """The paper's 1000 permutations of 9 tiles: unnas' pycls/datasets/files/hamming_perms_1000_patches_9_max.npy
    (MIT, shipped with its notice in study/objectives/data/), rows in the file's order, shape (1000, 9)."""
    perms = np.load(UNNAS_FILE, allow_pickle=False)
    if perms.shape != (1000, 9):
        raise ValueError(f"{UNNAS_FILE} holds an array of shape {perms.shape}, not (1000, 9)")
    return perms.astype(np.int64)
