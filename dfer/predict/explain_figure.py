"""The PNG of one explanation: the T face crops as one strip, each with the ROI compressor's attention over the patch
grid (heat), the landmark prior (contours) and the landmarks (dots); below it, the occlusion effect of every step and
the three modality answers for the predicted class.

Drawn on a bare Agg canvas, not pyplot, as `dfer.train.plots` does, so a server thread can draw one too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:  # explain imports this module to write its PNG
    from dfer.predict.explain import Explanation

PANEL = 1.3  # inches per face crop


def save_explanation_png(explanation: Explanation, path: str | Path) -> Path:
    record, info = explanation.record, explanation.record["explain"]
    steps = info["steps"]
    T = len(steps)
    has_faces = explanation.faces is not None and explanation.attention is not None
    fig = Figure(figsize=(max(6.0, PANEL * T), (PANEL + 0.4 if has_faces else 0) + 2.2), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 if has_faces else 1, T, height_ratios=[PANEL + 0.4, 2.2] if has_faces else [1])
    if has_faces:
        peak = float(explanation.attention.max())
        for t, step in enumerate(steps):
            _face(fig.add_subplot(grid[0, t]), explanation, t, step, peak)
    _effects(fig.add_subplot(grid[-1, :]), record, info)
    fig.suptitle(f"{Path(record['path']).name}: {record['top1']}", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def _face(ax, explanation: Explanation, t: int, step: dict, peak: float) -> None:
    """One crop, the attention upsampled onto it (patch cells, not smoothed), the prior's contours, the landmarks."""
    face = explanation.faces[t].transpose(1, 2, 0)  # (S, S, 3)
    S = face.shape[0]
    ax.imshow(face)
    ax.imshow(explanation.attention[t], cmap="inferno", alpha=0.55, vmin=0.0, vmax=peak, extent=(0, S, S, 0),
              interpolation="nearest")
    prior = explanation.prior[t]  # (g, g)
    if prior.max() > 0:
        g = prior.shape[0]
        centres = (np.arange(g) + 0.5) * S / g
        ax.contour(centres, centres, prior, levels=prior.max() * np.array([0.3, 0.6, 0.9]), colors="cyan",
                   linewidths=0.6)
    points = explanation.landmarks[t]  # (5, 2)
    if np.isfinite(points).all():
        ax.scatter(points[:, 0], points[:, 1], s=6, c="lime")
    label = f"{step['time']:.2f} s" + ("" if step.get("video", True) else " (no face)")
    ax.set_title(label, fontsize=7)
    ax.set_axis_off()


def _effects(ax, record: dict, info: dict) -> None:
    """Bars: how far masking each step moves the prediction; the legend gives each modality's answer."""
    steps = info["steps"]
    times = [step["time"] for step in steps]
    width = 0.8 * (np.diff(times).min() if len(times) > 1 else 0.1)
    ax.bar(times, [step["shift"] for step in steps], width=width, color="tab:blue", label="shift (total variation)")
    ax.bar(times, [step["top1_drop"] for step in steps], width=width / 2, color="tab:orange",
           label=f"drop in p({record['top1']})")
    ax.axhline(0, color="black", linewidth=0.5)
    answers = ", ".join(f"{key}: p={info[key][record['top1']]:.2f}" for key in info["available"])
    ax.set_title(f"masking one step at a time; {answers}", fontsize=8)
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=7)
