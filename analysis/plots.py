"""Figures drawn from DataFrames; nothing here computes statistics beyond a fitted line and sorting.

Every function takes the tables made by analysis.tables and returns a matplotlib Figure; `save` writes
it as PNG and PDF. Accuracies are fractions and shown as percentages.
"""

from __future__ import annotations

import contextlib
import math

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

from study.files import file_mode  # noqa: E402

STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False}
PERCENT = FuncFormatter(lambda v, _: f"{100 * v:.4g}%")  # 0.45 -> 45%, 0.725 -> 72.5%
COUNTS = {"params": "parameters", "flops": "multiply-accumulates per image"}


def _grid(n: int, width: float = 3.2, height: float = 3.0, cols: int = 3) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with n panels in rows of at most `cols`; unused panels hidden."""
    cols = max(1, min(n, cols))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _interval(row: pd.Series, stat: str = "spearman") -> str:
    """`0.62 [0.41, 0.78]`, or the estimate alone when the interval is undefined."""
    est, low, high = row[stat], row.get(f"{stat}_low", math.nan), row.get(f"{stat}_high", math.nan)
    if math.isnan(low) or math.isnan(high):
        return f"{est:.2f}"
    return f"{est:.2f} [{low:.2f}, {high:.2f}]"


def scatter_panels(cells: pd.DataFrame, reference: str, others: list[str], corr: pd.DataFrame) -> plt.Figure:
    """One panel per objective: its accuracy (x) against the reference accuracy (y), like UnNAS fig. 2.

    The line is a Theil-Sen fit (robust to the outliers a few failed trainings leave); the legend gives
    Spearman's rho with its bootstrap interval, and the noise ceiling when there is one. `corr` is the
    correlations table (indexed by objective or with an `objective` column).
    """
    corr = corr.set_index("objective") if "objective" in corr.columns else corr
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(others))
        for ax, name in zip(axes, others):
            count = name in COUNTS  # params, FLOPs: counts on a log axis, not accuracies; the line fits log x
            pair = cells[[name, reference]].dropna()
            x, y = pair[name].to_numpy(float), pair[reference].to_numpy(float)
            ax.scatter(x, y, s=12, alpha=0.7, color="tab:blue", edgecolors="none", label=f"{len(pair)} cells")
            if len(pair) >= 2 and np.ptp(x) > 0:
                fx = np.log10(x) if count else x
                slope, intercept, _, _ = stats.theilslopes(y, fx)
                xs = np.linspace(fx.min(), fx.max(), 50)
                label = rf"$\rho$ = {_interval(corr.loc[name])}"
                ceiling = corr.loc[name].get("ceiling", math.nan)
                if not math.isnan(ceiling):
                    label += f"\nceiling {ceiling:.2f}"
                ax.plot(10 ** xs if count else xs, intercept + slope * xs, color="tab:red", lw=1.5, label=label)
            ax.legend(loc="best", frameon=False, handlelength=1.2)
            ax.set_xlabel(COUNTS.get(name, f"{name} accuracy"))
            ax.set_ylabel(f"{reference} accuracy")
            if count:
                ax.set_xscale("log")
            else:
                ax.xaxis.set_major_formatter(PERCENT)
            ax.yaxis.set_major_formatter(PERCENT)
            ax.grid(alpha=0.3, lw=0.5)
        fig.tight_layout()
    return fig


def rank_heatmap(matrix: pd.DataFrame) -> plt.Figure:
    """Spearman rho between every pair of objectives and baselines, annotated, on a diverging scale."""
    names = list(matrix.columns)
    size = max(3.2, 0.62 * len(names) + 1.6)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(size + 0.8, size))
        image = ax.imshow(matrix.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right")
        ax.set_yticks(range(len(names)), names)
        for i in range(len(names)):
            for j in range(len(names)):
                value = matrix.iat[i, j]
                if not math.isnan(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(value) > 0.6 else "black")
        ax.spines[:].set_visible(False)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=r"Spearman $\rho$")
        fig.tight_layout()
    return fig


def random_experiment(curves: pd.DataFrame, reference: str) -> plt.Figure:
    """One panel per proxy: reference accuracy of its pick among m random cells (mean, 25-75% band),
    against the best possible pick (the reference itself) and a pick by a random ranking."""
    proxies = [p for p in dict.fromkeys(curves["objective"]) if p not in (reference, "random")]
    oracle = curves[curves["objective"] == reference]
    chance = curves[curves["objective"] == "random"]
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(proxies))
        for ax, name in zip(axes, proxies):
            curve = curves[curves["objective"] == name]
            ax.fill_between(curve["size"], curve["q25"], curve["q75"], color="tab:blue", alpha=0.2, lw=0,
                            label="25-75%")
            ax.plot(curve["size"], curve["mean"], "o-", color="tab:blue", ms=3, label="best by the proxy (mean)")
            if not oracle.empty:
                ax.plot(oracle["size"], oracle["mean"], "--", color="black", lw=1, label=f"best by {reference}")
            if not chance.empty:
                ax.plot(chance["size"], chance["mean"], ":", color="tab:gray", lw=1.2,
                        label="best by a random ranking")
            ax.set_xscale("log", base=2)
            ax.set_xticks(curve["size"].tolist(), [str(m) for m in curve["size"]])
            ax.set_xlabel("cells drawn (m)")
            ax.set_ylabel(f"{reference} accuracy of the pick")
            ax.yaxis.set_major_formatter(PERCENT)
            ax.set_title(f"proxy: {name}")
            ax.grid(alpha=0.3, lw=0.5)
        fig.tight_layout()
        if axes:  # one legend for all panels, below them, so that it never hides a curve
            handles, labels = axes[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels),
                       frameon=False)
    return fig


def accuracy_ecdf(table: pd.DataFrame) -> plt.Figure:
    """Empirical CDF of the cells' accuracy, one step curve per objective."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        for name, part in table.groupby("objective", sort=False):
            ax.step(part["accuracy"], part["fraction"], where="post", lw=1.5, label=f"{name} ({len(part)} cells)")
        ax.set_xlabel("test accuracy")
        ax.set_ylabel("fraction of cells")
        ax.xaxis.set_major_formatter(PERCENT)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(loc="upper left", frameon=False)
        fig.tight_layout()
    return fig


def truth_by_epoch(epochs: pd.DataFrame, column: str, label: str) -> plt.Figure:
    """One panel per method: `column` of the cell derived after each epoch, one line per objective (mean over
    seeds, with the seeds' range as a band), the published reference lines where given (`refs`)."""
    methods = list(dict.fromkeys(epochs["method"]))
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(methods), width=3.6)
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
        fig, axes = _grid(len(alphas), width=0.55 * first.shape[1] + 1.8, height=0.28 * first.shape[0] + 1.4, cols=cols)
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


def save(fig: plt.Figure, stem) -> list[str]:
    """Write `fig` as PNG and PDF next to each other, each atomically (a reader never sees half a file);
    returns the paths."""
    import os
    import tempfile

    paths = [f"{stem}.png", f"{stem}.pdf"]
    for p in paths:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(p)), prefix=f".{os.path.basename(p)}.",
                                   suffix=".tmp")
        os.close(fd)
        try:
            fig.savefig(tmp, format=p.rsplit(".", 1)[1], dpi=200, bbox_inches="tight", pad_inches=0.05)
            os.chmod(tmp, file_mode())  # mkstemp's file is private; the figure follows the umask
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    plt.close(fig)
    return paths

