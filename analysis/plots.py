"""Figures drawn from DataFrames; nothing here computes statistics beyond a fitted line and sorting.

Every function takes the tables made by analysis.tables and returns a matplotlib Figure; `save` writes
it as PNG and PDF. Accuracies are fractions and shown as percentages.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
from scipy import stats  # noqa: E402
from study.store.records import write_error
from study.files import file_mode

STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False}
PERCENT = FuncFormatter(lambda v, _: f"{100 * v:.4g}%")  # 0.45 -> 45%, 0.725 -> 72.5%
COUNTS = {"params": "parameters", "flops": "multiply-accumulates per image"}


def grid(n: int, width: float = 3.2, height: float = 3.0, cols: int = 3) -> tuple[plt.Figure, list[plt.Axes]]:
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
        fig, axes = grid(len(others))
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
        fig, axes = grid(len(proxies))
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


def beyond_size(table: pd.DataFrame) -> plt.Figure:
    """Per objective and score: rho with the target, partial rho given the parameter count, and rho of the
    mean rank with the parameter count, each with its interval; the count's own rho as a vertical line."""
    rows = table[~table["objective"].isin(["random", "flops", "params"])]
    params = table.loc[table["objective"] == "params", "spearman"]
    stats = (("spearman", "ρ alone", "tab:blue"), ("partial", "partial ρ given params", "tab:orange"),
             ("combined", "ρ of mean rank with params", "tab:green"))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 0.45 * len(rows) + 1.4))
        y = np.arange(len(rows))[::-1]
        for k, (stat, label, colour) in enumerate(stats):
            est = rows[stat].to_numpy(float)
            low, high = rows[f"{stat}_low"].to_numpy(float), rows[f"{stat}_high"].to_numpy(float)
            err = np.clip(np.nan_to_num(np.vstack([est - low, high - est])), 0, None)  # a percentile interval may miss its estimate
            ax.errorbar(est, y + (1 - k) * 0.22, xerr=err, fmt="o", ms=4, color=colour, capsize=2, lw=1, label=label)
        if len(params):
            ax.axvline(float(params.iloc[0]), color="grey", lw=1.2, label="parameter count alone")
        ax.axvline(0, color="black", lw=0.5)
        ax.set_yticks(y, rows["objective"].tolist())
        ax.set_xlim(min(-0.2, float(np.nanmin(rows[["partial_low", "spearman_low"]].to_numpy(float), initial=0)) - 0.05), 1.0)
        ax.set_xlabel(f"Spearman ρ with {table['reference'].iloc[0]}")
        ax.grid(alpha=0.3, lw=0.5, axis="x")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.3 / max(len(rows), 1)), ncol=2, frameon=False)
        fig.tight_layout()
    return fig


PALETTE = plt.get_cmap("Set2").colors  # the paper's palette (seaborn's Set2)
_TASKS = {"cls": "supervised", "rot": "rotation", "col": "colorization", "jig": "jigsaw"}


def pretty(name: str) -> str:
    """A column's name for a figure: unnas-cifar10-rot -> `C10 rotation`, nb201-cifar10 -> `NB201 C10`."""
    parts = name.split("-")
    if parts[0] == "unnas" and len(parts) == 3:
        data = {"cifar10": "C10", "imagenet": "IN"}.get(parts[1], parts[1])
        return f"{data} {_TASKS.get(parts[2], parts[2])}"
    return name


def paper_panels(cells: pd.DataFrame, reference: str, others: list[str], corr: pd.DataFrame,
                 title: str = "") -> plt.Figure:
    """UnNAS figs. 2-4: one panel per objective, its accuracy (y) against the reference's (x, shared).

    Each panel: the cells, a robust (Theil-Sen) line and Spearman's rho in the legend, one colour per
    objective, the reference's axis shared by all panels and labelled once below them.
    """
    corr = corr.set_index("objective") if "objective" in corr.columns else corr
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, max(1, len(others)), figsize=(3.0 * max(1, len(others)), 2.9), sharex=True,
                                 squeeze=False)
        for k, (ax, name) in enumerate(zip(axes.flat, others)):
            pair = cells[[reference, name]].dropna()
            x, y = pair[reference].to_numpy(float), pair[name].to_numpy(float)
            color = PALETTE[k % len(PALETTE)]
            rho = corr.loc[name, "spearman"] if name in corr.index else math.nan
            ax.scatter(x, y, s=9, alpha=0.5, color=color, edgecolors="none",
                       label=f"{pretty(name)}\n" + rf"$\rho$ = {rho:.2f}")
            if len(pair) >= 2 and np.ptp(x) > 0:
                slope, intercept, _, _ = stats.theilslopes(y, x)
                xs = np.linspace(x.min(), x.max(), 50)
                ax.plot(xs, intercept + slope * xs, color=color, lw=2)
            ax.legend(loc="upper left", frameon=True, framealpha=0.8, handlelength=0.8, markerscale=2)
            ax.set_ylabel(f"{pretty(name)} accuracy")
            ax.xaxis.set_major_formatter(PERCENT)
            ax.yaxis.set_major_formatter(PERCENT)
            ax.grid(alpha=0.3, lw=0.5)
        fig.supxlabel(f"{pretty(reference)} accuracy" + (f" ({title})" if title else ""), fontsize=9)
        fig.tight_layout()
    return fig


def paper_random(curves: pd.DataFrame, reference: str, title: str = "") -> plt.Figure:
    """UnNAS fig. 5: for each proxy, the reference accuracy of its pick among m random cells against m.

    One panel: the mean over draws per proxy (markers and a line) with a band of two standard deviations,
    the best pick (by the reference itself, dashed) and a random ranking's pick (dotted) for scale.
    """
    proxies = [p for p in dict.fromkeys(curves["objective"]) if p not in (reference, "random")]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 3.4))
        for k, name in enumerate(proxies):
            curve = curves[curves["objective"] == name]
            x, mean, std = np.log2(curve["size"].to_numpy(float)), curve["mean"].to_numpy(), curve["std"].to_numpy()
            color = PALETTE[k % len(PALETTE)]
            ax.fill_between(x, mean - 2 * std, mean + 2 * std, color=color, alpha=0.08, lw=0)
            ax.plot(x, mean, "o-", color=color, ms=4, lw=1, alpha=0.9, label=pretty(name))
        for name, style, label in ((reference, "--", f"best by {pretty(reference)}"),
                                   ("random", ":", "random ranking")):
            curve = curves[curves["objective"] == name]
            if not curve.empty:
                ax.plot(np.log2(curve["size"].to_numpy(float)), curve["mean"], style, color="0.3", lw=1, label=label)
        sizes = sorted(curves["size"].unique())
        ax.set_xticks(np.log2(sizes), [str(int(m)) for m in sizes])
        ax.set_xlabel("experiment size m (cells drawn, log scale)")
        ax.set_ylabel(f"{pretty(reference)} accuracy of the pick")
        ax.yaxis.set_major_formatter(PERCENT)
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.4, lw=0.5)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # beside: never over a curve
        fig.tight_layout()
    return fig


def save(fig: plt.Figure, stem) -> list[str]:
    """Write `fig` as PNG and PDF next to each other, each atomically (a full disk leaves the old file or
    none, never a truncated one); returns the paths."""
    import os
    import tempfile

    paths = [f"{stem}.png", f"{stem}.pdf"]
    try:
        for p in paths:
            folder, name = os.path.split(p)
            fd, tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    fig.savefig(f, format=p.rsplit(".", 1)[1], dpi=200, bbox_inches="tight", pad_inches=0.05)
                os.chmod(tmp, _file_mode())
                os.replace(tmp, p)
            except BaseException as e:
                Path(tmp).unlink(missing_ok=True)
                if isinstance(e, OSError):
                    raise write_error(Path(p), e) from None
                raise
    finally:
        plt.close(fig)
    return paths


def _file_mode() -> int:

    return file_mode()
