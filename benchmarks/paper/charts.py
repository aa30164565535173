"""The report's PNG charts, drawn with matplotlib (the optional `paper` extra: pip install '.[paper]').

Only report.py imports this module, and only when it draws, so the rest of the harness and its
tests run without matplotlib (the lent GPU machines have none; draw there with --report-only later).

Example:
    >>> texture_gain_chart(Path("gain.png"), ["< 0.05", ">= 0.05"], {"4-2": [0.3, 0.1]})  # doctest: +SKIP
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only: no display on these machines
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from mmsr.atomic import write_atomically  # noqa: E402

__all__ = ["quality_chart", "quality_time_chart", "texture_gain_chart", "training_time_chart"]

_DPI = 110


def _value(v: Optional[float]) -> float:
    # A missing or infinite value draws as no bar rather than breaking the axis.
    return v if v is not None and math.isfinite(v) else math.nan


def _grouped_bars(ax, groups: Sequence[str], series: Dict[str, Sequence[Optional[float]]]) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(positions, [_value(v) for v in values], width, label=name)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, dpi=_DPI, format="png"))
    plt.close(fig)


def texture_gain_chart(path: Path, bin_labels: Sequence[str], gains: Dict[str, Sequence[Optional[float]]]) -> None:
    """Table 1: PSNR-Y gain over bicubic (dB) per TVAT bin, one bar per method."""
    fig, ax = plt.subplots(figsize=(max(8.0, 1.6 * len(bin_labels) + 4), 4))
    _grouped_bars(ax, bin_labels, gains)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("TVAT bin of the LR tile (smooth → complex)")
    ax.set_ylabel("PSNR-Y gain over bicubic (dB)")
    ax.set_title("PSNR-Y gain over bicubic per texture bin")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    _save(fig, path)


def training_time_chart(path: Path, bars: Sequence[Tuple[str, float, bool]]) -> None:
    """Table 3: training time per setting; ``bars`` are (label, seconds, computed), computed ones hatched."""
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(bars) + 1.5))
    labels = [label for label, _, _ in bars]
    seconds = [s for _, s, _ in bars]
    drawn = ax.barh(range(len(bars)), seconds, color="tab:blue")
    for bar, (_, _, computed) in zip(drawn, bars):
        if computed:
            bar.set_hatch("//")
            bar.set_facecolor("white")
            bar.set_edgecolor("tab:blue")
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (hatched: computed, not measured)")
    ax.set_title("Training time: baseline vs MMSR")
    _save(fig, path)


def quality_chart(
    path: Path, title: str, images: List[str], scores: Dict[str, Dict[str, Sequence[Optional[float]]]]
) -> None:
    """Fig. 10: per image PSNR-Y, SSIM-Y and NIQE bars, one bar per method; ``scores[metric][method]``."""
    metrics = list(scores)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(7.0, 0.9 * len(images) + 2), 2.8 * len(metrics)),
                             squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        _grouped_bars(ax, images, scores[metric])
        ax.set_ylabel(metric)
        finite = [v for values in scores[metric].values() for v in values if v is not None and math.isfinite(v)]
        if finite:
            # Bars that start at 0 hide differences of a few percent; start near the smallest value.
            low, high = min(finite), max(finite)
            ax.set_ylim(low - 0.15 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
        ax.tick_params(axis="x", labelrotation=30)
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1))
    axes[0, 0].set_title(title)
    _save(fig, path)


def quality_time_chart(path: Path, title: str, series: Dict[str, Sequence[Tuple[float, float]]], target: float) -> None:
    """Table 3 at equal quality: PSNR-Y against training time, one line per run; ``target`` dotted."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, points in series.items():
        style = "--" if "computed" in name else "-"
        ax.plot([t for t, _ in points], [p for _, p in points], style, marker="o", markersize=4, label=name)
    ax.axhline(target, color="black", linestyle=":", linewidth=0.9, label=f"equal quality ({target:.2f} dB)")
    ax.set_xlabel("training time (s; dashed: computed, not measured)")
    ax.set_ylabel("PSNR-Y (dB)")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower right")
    _save(fig, path)
