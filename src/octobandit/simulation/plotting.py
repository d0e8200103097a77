"""Figures of simulation results (PNG). Needs matplotlib, an optional dependency."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from octobandit.simulation.runner import SimulationResult

MISSING = (
    "plotting needs matplotlib, an optional dependency: "
    "pip install 'octobandit[plot]' (or pip install matplotlib)"
)


def _pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend, or a clear ImportError."""
    try:
        mpl = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    mpl.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def plot_results(
    results: Sequence[SimulationResult],
    path: str | Path,
    *,
    title: str | None = None,
    lower_bound: tuple[ArrayLike, ArrayLike] | None = None,
    lower_bound_label: str = "Lai–Robbins lower bound",
    spread: bool = False,
) -> Path:
    """Cumulative regret (top) and best-arm share (bottom) of one or more results.

    Each policy is a line (the mean over replications) with its 95% confidence
    band shaded; ``spread=True`` also draws the 2.5–97.5% quantiles of single
    runs, dotted. ``lower_bound = (steps, values)`` adds a dashed reference
    curve (the y axis follows the results, so an asymptotic bound larger than the
    regret at this horizon leaves the chart, and its legend says so). Returns the
    path of the PNG written.
    """
    plt = _pyplot()
    fig, (ax_r, ax_b) = plt.subplots(
        2, 1, figsize=(8, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for i, res in enumerate(results):
        color = f"C{i}"
        label = res.label or str(res.policy.get("type", f"policy {i}"))
        x = res.steps
        lo, hi = res.regret_band
        ax_r.plot(x, res.regret_mean, color=color, label=f"{label} (R = {res.replications})")
        ax_r.fill_between(x, lo, hi, color=color, alpha=0.25, linewidth=0)
        if spread:
            q_lo, q_hi = res.regret_quantiles()
            ax_r.plot(x, q_lo, color=color, linestyle=":", linewidth=0.8)
            ax_r.plot(x, q_hi, color=color, linestyle=":", linewidth=0.8)
        b_lo, b_hi = res.best_arm_band
        ax_b.plot(x, res.best_arm_share, color=color, label=label)
        ax_b.fill_between(x, b_lo, b_hi, color=color, alpha=0.25, linewidth=0)
    highs = [res.regret_quantiles()[1] if spread else res.regret_band[1] for res in results]
    top = max((float(np.max(h)) for h in highs), default=1.0)
    if lower_bound is not None:
        lx, ly = (np.asarray(v, dtype=np.float64) for v in lower_bound)
        if ly.size and float(ly.max()) > 1.15 * top:  # asymptotic: may exceed short-run regret
            lower_bound_label += f" (off the chart: {float(ly[-1]):.0f} at step {lx[-1]:.0f})"
        ax_r.plot(lx, ly, color="black", linestyle="--", linewidth=1.2, label=lower_bound_label)
    ax_r.set_ylabel("cumulative pseudo-regret")
    ax_r.set_ylim(0, 1.15 * top if top > 0 else 1.0)
    ax_r.grid(alpha=0.3)
    ax_r.legend(loc="upper left", fontsize=9)
    ax_b.set_ylabel("best-arm share")
    ax_b.set_xlabel("step")
    ax_b.set_ylim(0, 1.02)
    ax_b.grid(alpha=0.3)
    ax_r.set_title(title or "Cumulative regret: mean and 95% confidence band over replications")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return out
