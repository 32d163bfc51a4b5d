"""The PNG of one explanation: the T face crops in a grid of at most eight a row, each with the heat the model put on
it (the ROI compressor's attention, or a zero-shot run's class evidence) over the patch grid, the landmark prior
(contours) and the landmarks (dots), with a colour bar and a legend saying which is which; below them, the effect of
masking each step. The title gives the predicted class's probability from each input the run can answer from.

`explanation_figure` builds the Figure, so a test reads its axes, colour bar, legend and title; `save_explanation_png`
writes it. Drawn on a bare Agg canvas, not pyplot, as `dfer.train.plots` does, so a server thread can draw one too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

if TYPE_CHECKING:  # explain imports this module to write its PNG
    from dfer.predict.explain import Explanation

DPI = 100
CROP = 1.5  # inches per crop cell at DPI: the image itself keeps >= 112 px after its title and the gaps
PER_ROW = 8  # 16 frames read as 2 rows of 8, 4 frames as 1 row of 4
EFFECTS = 2.4  # inches of height for the per-step panel
CROP_LABEL = "crop"  # the Axes label of each face crop, so a test can find them
ANSWERS = {"av": "audio + video", "audio": "audio only", "video": "video only"}  # explain's rows, in words
PRIOR_LEVELS = (0.3, 0.6, 0.9)  # contours of the landmark prior, as fractions of its peak in the frame
PRIOR_COLOUR, LANDMARK_COLOUR = "cyan", "lime"  # both stand out on the inferno heat and on skin


def explanation_title(record: dict) -> str:
    """"p(fearful): audio + video 0.40 · audio only 0.01 · video only 0.48": the predicted class by its display name,
    and its probability from each input the run can answer from (an audio-only run has no "audio + video")."""
    info, top = record["explain"], record["top1"]
    return f"p({top}): " + " · ".join(f"{answer_words(key, info)} {info[key][top]:.2f}" for key in info["available"])


def answer_words(key: str, info: dict) -> str:
    """An explanation row's name in words: the historic streams' as they always read, others by their names."""
    if key in ANSWERS:
        return ANSWERS[key]
    return "all streams" if key == "all" else f"{key} only"


def explanation_figure(explanation: Explanation) -> Figure:
    """The whole picture, laid out (constrained) but not yet drawn."""
    steps = explanation.record["explain"]["steps"]
    has_faces = explanation.faces is not None and explanation.attention is not None
    cols = min(len(steps), PER_ROW)
    rows = -(-len(steps) // cols)
    crops_height = rows * (CROP + 0.15) + 0.6 if has_faces else 0  # inches: each row with its titles, the legend
    fig = Figure(figsize=(max(6.0, CROP * cols + 1.2), crops_height + EFFECTS + 0.5),  # + the colour bar; + the title
                 layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(explanation_title(explanation.record), fontsize=12)
    if has_faces:
        crops, effects = fig.subfigures(2, 1, height_ratios=[crops_height, EFFECTS])
        _crops(crops, explanation, rows, cols)
    else:
        effects = fig
    _effects(effects.add_subplot(), explanation.record)
    return fig


def save_explanation_png(explanation: Explanation, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    explanation_figure(explanation).savefig(path, dpi=DPI)
    return path


def _crops(fig, explanation: Explanation, rows: int, cols: int) -> None:
    """The crops in a rows x cols grid on one colour scale (0 to the clip's peak, so frames compare), its colour bar
    beside them and the legend of the overlays below."""
    steps = explanation.record["explain"]["steps"]
    axes = fig.subplots(rows, cols, squeeze=False)  # (rows, cols)
    peak = float(explanation.attention.max())
    for ax in axes.flat:  # a last row's empty cells too
        ax.set_axis_off()
    heats = [_face(ax, explanation, t, step, peak) for t, (ax, step) in enumerate(zip(axes.flat, steps))]
    bar = fig.colorbar(heats[0], ax=axes, shrink=0.9, aspect=25 * rows, pad=0.01)
    bar.set_label(explanation.heat, fontsize=7)
    bar.ax.tick_params(labelsize=7)
    overlays = [Line2D([], [], color=PRIOR_COLOUR, linewidth=1,
                       label=f"landmark prior ({', '.join(f'{level:.0%}' for level in PRIOR_LEVELS)} of its peak)"),
                Line2D([], [], color=LANDMARK_COLOUR, marker="o", linestyle="", markersize=5,
                       label="landmarks (eyes, nose, mouth corners)")]
    if not explanation.prior.any():  # a zero-shot run has no landmark prior
        overlays = overlays[1:]
    fig.legend(handles=overlays, loc="outside lower center", ncols=len(overlays), fontsize=8, frameon=False)
    fig.suptitle(f"{Path(explanation.record['path']).name}: each face crop the model read", fontsize=9)


def _face(ax, explanation: Explanation, t: int, step: dict, peak: float):
    """One crop at its own resolution, the (g, g) heat stretched over it (patch cells, not smoothed), the prior's
    contours and the landmarks; returns the heat's image for the colour bar."""
    face = explanation.faces[t].transpose(1, 2, 0)  # (S, S, 3)
    S = face.shape[0]
    ax.set_label(CROP_LABEL)
    ax.imshow(face)
    heat = ax.imshow(explanation.attention[t], cmap="inferno", alpha=0.55, vmin=0.0, vmax=peak, extent=(0, S, S, 0),
                     interpolation="nearest")
    prior = explanation.prior[t]  # (g, g)
    if prior.max() > 0:
        g = prior.shape[0]
        centres = (np.arange(g) + 0.5) * S / g
        ax.contour(centres, centres, prior, levels=prior.max() * np.array(PRIOR_LEVELS), colors=PRIOR_COLOUR,
                   linewidths=0.8)
    points = explanation.landmarks[t]  # (5, 2)
    if np.isfinite(points).all():
        ax.scatter(points[:, 0], points[:, 1], s=10, c=LANDMARK_COLOUR)
    ax.set_title(f"{step['time']:.2f} s" + ("" if step.get("video", True) else " (no face)"), fontsize=8, pad=2)
    return heat


def _effects(ax, record: dict) -> None:
    """Bars: how far masking each step moves the prediction."""
    steps = record["explain"]["steps"]
    times = [step["time"] for step in steps]
    width = 0.8 * (np.diff(times).min() if len(times) > 1 else 0.1)
    ax.bar(times, [step["shift"] for step in steps], width=width, color="tab:blue",
           label="shift of the whole distribution (total variation)")
    ax.bar(times, [step["top1_drop"] for step in steps], width=width / 2, color="tab:orange",
           label=f"drop in p({record['top1']})")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title("what masking one step does to the prediction", fontsize=9)
    ax.set_xlabel("time of the step (s)", fontsize=8)
    ax.set_ylabel("change", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
