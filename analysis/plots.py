"""Figures drawn from DataFrames; nothing here computes statistics beyond a fitted line."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402


def scatter_panels(cells: pd.DataFrame, reference: str, others: list[str], rho: dict[str, float]) -> plt.Figure:
    """One panel per objective: its accuracy (x) against the reference accuracy (y), like UnNAS fig. 2.

    The line is a Theil-Sen fit (robust to the outliers a few failed trainings leave); the legend
    gives Spearman's rho.
    """
    n = len(others)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, others):
        pair = cells[[name, reference]].dropna()
        x, y = pair[name].to_numpy(float), pair[reference].to_numpy(float)
        ax.scatter(x, y, s=10, alpha=0.6, color="tab:blue", edgecolors="none")
        if len(pair) >= 2 and np.ptp(x) > 0:
            slope, intercept, _, _ = stats.theilslopes(y, x)
            xs = np.linspace(x.min(), x.max(), 50)
            ax.plot(xs, intercept + slope * xs, color="tab:red", lw=1.5, label=f"rho={rho[name]:.2f}")
            ax.legend(loc="lower right", frameon=False)
        ax.set_xlabel(f"{name} accuracy")
        ax.set_ylabel(f"{reference} accuracy")
        ax.set_title(f"{name} vs {reference} ({len(pair)} cells)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, stem) -> list[str]:
    """Write `fig` as PNG and PDF next to each other; returns the paths."""
    paths = [f"{stem}.png", f"{stem}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths
