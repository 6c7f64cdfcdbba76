"""Figures of a search (analysis.search): the derived cell's truth against epoch, and the final alphas.

Drawn from the DataFrames analysis/search.py builds; written with analysis.plots.save.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from analysis.plots import PERCENT, STYLE, grid, plt


def truth_by_epoch(epochs: pd.DataFrame, column: str, label: str) -> plt.Figure:
    """One panel per method: `column` of the cell derived after each epoch, one line per objective (mean over
    seeds, with the seeds' range as a band), the published reference lines where given (`refs`)."""
    methods = list(dict.fromkeys(epochs["method"]))
    with plt.rc_context(STYLE):
        fig, axes = grid(len(methods), width=3.6)
        for ax, method in zip(axes, methods):
            part = epochs[epochs["method"] == method]
            for objective, runs in part.groupby("objective", sort=True):
                curve = runs.groupby("epoch")[column].agg(["mean", "min", "max", "count"]).reset_index()
                line, = ax.plot(curve["epoch"], curve["mean"], "o-", ms=2.5, lw=1.4,
                                label=f"{objective} ({int(curve['count'].max())} seed(s))")
                ax.fill_between(curve["epoch"], curve["min"], curve["max"], color=line.get_color(), alpha=0.15, lw=0)
            ax.set_title(f"method: {method}")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("search epoch")
            ax.set_ylabel(label)
            ax.yaxis.set_major_formatter(PERCENT)
            ax.grid(alpha=0.3, lw=0.5)
            ax.legend(loc="lower right", frameon=False)
        fig.tight_layout()
    return fig


def alpha_heatmaps(alphas: list[tuple[str, np.ndarray, list[str], list[str]]]) -> plt.Figure:
    """One heatmap per (title, softmax(alpha) (edges, ops), edge names, op names), weights annotated."""
    cols = min(len(alphas), 3)
    with plt.rc_context(STYLE):
        first = alphas[0][1]
        fig, axes = grid(len(alphas), width=0.55 * first.shape[1] + 1.8, height=0.28 * first.shape[0] + 1.4, cols=cols)
        for ax, (title, weights, edges, ops) in zip(axes, alphas):
            # Each panel on its own range: early in a search the weights differ in the third decimal.
            low, high = float(weights.min()), max(float(weights.max()), float(weights.min()) + 1e-6)
            ax.imshow(weights, cmap="viridis", vmin=low, vmax=high, aspect="auto")
            ax.set_xticks(range(len(ops)), ops, rotation=40, ha="right")
            ax.set_yticks(range(len(edges)), edges)
            digits = 2 if high - low > 0.05 else 3
            for (i, j), value in np.ndenumerate(weights):
                ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center", fontsize=6,
                        color="black" if value > low + 0.6 * (high - low) else "white")
            ax.set_title(title)
            ax.spines[:].set_visible(False)
        fig.tight_layout()
    return fig
