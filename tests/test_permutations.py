"""Tests for study.objectives.permutations: all k! permutations and the greedy maximal-Hamming set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from study.objectives import permutations as perms


def _assert_valid_distinct(p: np.ndarray, n: int) -> None:
    assert p.ndim == 2 and p.shape[1] == n
    assert np.array_equal(np.sort(p, axis=1), np.broadcast_to(np.arange(n), p.shape))  # each row a permutation
    assert len(np.unique(p, axis=0)) == len(p)  # rows distinct


def _pairwise(p: np.ndarray) -> np.ndarray:
    """Upper-triangle pairwise Hamming distances of the rows of p."""
    return perms.hamming_distances(p, p)[np.triu_indices(len(p), 1)]


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 5, 6])
def test_all_permutations_lexicographic(k: int) -> None:
    assert perms.all_permutations(k).tolist() == [list(t) for t in itertools.permutations(range(k))]


def test_all_permutations_2x2_grid() -> None:
    p = perms.all_permutations(4)
    assert p.shape == (24, 4) and p.dtype == np.int64
    _assert_valid_distinct(p, 4)
    assert p[0].tolist() == [0, 1, 2, 3] and p[-1].tolist() == [3, 2, 1, 0]


def test_all_permutations_nine_sorted() -> None:
    p = perms.all_permutations(9)
    assert p.shape == (362880, 9)
    assert (np.diff(p @ (10 ** np.arange(8, -1, -1))) > 0).all()  # strictly increasing as 9-digit numbers


def test_hamming_distances_small() -> None:
    a = np.array([[0, 1, 2], [2, 1, 0]])
    assert perms.hamming_distances(a, a).tolist() == [[0, 2], [2, 0]]


@pytest.mark.parametrize(("criterion", "min_bound"), [("mean", 2), ("min", 5)])
def test_hamming_set_1000(criterion: str, min_bound: int) -> None:
    """Observed for seed 0: mean pairwise distance 8.008 for both; minimum 2 ("mean"), 5 ("min")."""
    p = perms.hamming_permutations(9, 1000, seed=0, criterion=criterion)
    assert p.shape == (1000, 9) and np.issubdtype(p.dtype, np.integer)
    _assert_valid_distinct(p, 9)
    d = _pairwise(p)
    assert d.min() >= min_bound
    assert d.mean() > 8.0  # a random set averages 9 - 1 = 8 (one expected fixed point); greedy does not fall below


def test_hamming_set_deterministic_and_seeded() -> None:
    first = perms.hamming_permutations(9, 1000, seed=0)
    perms._hamming_set.cache_clear()  # recompute rather than read the cache
    again = perms.hamming_permutations(9, 1000, seed=0)
    assert np.array_equal(first, again)
    # Stable across machines too: numpy's default_rng(0) picks this start; ties resolve lexicographically.
    assert first[:3].tolist() == [[7, 5, 1, 6, 2, 3, 8, 0, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 0, 3, 2, 5, 4, 7, 8, 6]]
    assert not np.array_equal(first, perms.hamming_permutations(9, 1000, seed=1))


@pytest.mark.parametrize("criterion", perms.CRITERIA)
def test_hamming_set_matches_naive_greedy(criterion: str) -> None:
    """The running-array greedy equals a direct transcription of Algorithm 1 on a small case."""
    n_tiles, n_perms, seed = 5, 30, 3
    every = perms.all_permutations(n_tiles)
    chosen = [int(np.random.default_rng(seed).integers(len(every)))]
    for _ in range(n_perms - 1):
        d = perms.hamming_distances(every[chosen], every)  # (chosen, all)
        key = d.sum(axis=0) if criterion == "mean" else d.min(axis=0) * 10_000 + d.sum(axis=0)
        key[chosen] = -1
        chosen.append(int(np.argmax(key)))
    got = perms.hamming_permutations(n_tiles, n_perms, seed=seed, criterion=criterion)
    assert np.array_equal(got, every[chosen])


def test_hamming_set_whole_space() -> None:
    """Asking for all 4! permutations returns each exactly once."""
    _assert_valid_distinct(perms.hamming_permutations(4, 24, seed=0), 4)


def test_hamming_set_returns_copy() -> None:
    p = perms.hamming_permutations(4, 5, seed=0)
    p[:] = 0
    assert perms.hamming_permutations(4, 5, seed=0).any()


@pytest.mark.parametrize(
    "kwargs", [{"n_perms": 0}, {"n_tiles": 4, "n_perms": 25}, {"n_tiles": 10}, {"criterion": "median"}]
)
def test_hamming_set_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        perms.hamming_permutations(**kwargs)
