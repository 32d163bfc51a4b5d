"""The files of one timeline (`dfer.predict.timeline` rows): DIR/<stem>.csv, .jsonl, .vtt and .png.

- CSV: `start,end,top,top_prob,face_found_ratio,has_audio,p_<name 1>,...,p_<name C>`, one row per window, the
  probability columns named as in predictions.csv (`p_` + the class's display name); with `--actions`, an `actions`
  column: the window's strongest face actions ("mouthSmileLeft 0.57; ...").
- JSONL: one object per window (`window_record`, also what `dfer serve` returns), `probs` a {display name:
  probability} map.
- WebVTT: one cue per window ("angry 0.71"). Windows overlap, so each cue runs from halfway between its centre and
  the previous window's to halfway to the next one's (the first from 0, the last to the end): at any moment the
  caption is the window centred nearest to it, and cues never overlap.
- PNG: each class's probability over time at the window centres, with the face-found ratio underneath.

Every file is written to a temporary name and renamed into place, so a failure never leaves half a timeline.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIXED = ["start", "end", "top", "top_prob", "face_found_ratio", "has_audio"]
PROB = "p_"  # prefix of the probability columns, as in predictions.csv


def write_timeline(folder: Path, stem: str, rows: list[dict], title: str) -> dict[str, Path]:
    """All four files of one file's timeline rows; returns {suffix: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    writers = {"csv": write_csv, "jsonl": write_jsonl, "vtt": write_vtt, "png": lambda p, r: write_png(p, r, title)}
    paths = {}
    for suffix, write in writers.items():
        path = folder / f"{stem}.{suffix}"
        partial = path.with_name(f".{path.name}.partial")
        write(partial, rows)
        os.replace(partial, path)
        paths[suffix] = path
    return paths


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        actions = "actions" in rows[0]
        writer.writerow(FIXED + [PROB + name for name in rows[0]["labels"]] + ["actions"] * actions)
        for row in rows:
            ratio = "" if row["face_found_ratio"] is None else row["face_found_ratio"]
            writer.writerow([row["start"], row["end"], row["top"], f"{row['top_prob']:.6f}", ratio,
                             int(row["has_audio"]), *(f"{p:.6f}" for p in row["probs"]),
                             *([row["actions"]] if actions else [])])


def window_record(row: dict) -> dict:
    """One window as the .jsonl holds it and `dfer serve`'s `/predict` returns it: the FIXED fields and `probs`, a
    {display name: probability} map; and `actions`, its strongest face actions, when they were read."""
    return {**{key: row[key] for key in FIXED}, "probs": dict(zip(row["labels"], row["probs"], strict=True)),
            **{key: row[key] for key in ("actions",) if key in row}}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as file:
        for row in rows:
            file.write(json.dumps(window_record(row)) + "\n")


def cue_bounds(rows: list[dict]) -> list[tuple[float, float]]:
    """(start, end) of each window's caption: between the midpoints of neighbouring window centres."""
    centres = np.array([(row["start"] + row["end"]) / 2 for row in rows])  # (W,)
    cuts = (centres[1:] + centres[:-1]) / 2  # (W - 1,)
    starts = np.concatenate([[rows[0]["start"]], cuts])  # (W,)
    ends = np.concatenate([cuts, [rows[-1]["end"]]])  # (W,)
    return list(zip(starts.tolist(), ends.tolist()))


def vtt_time(seconds: float) -> str:
    """WebVTT's hh:mm:ss.ttt."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def write_vtt(path: Path, rows: list[dict]) -> None:
    lines = ["WEBVTT", ""]
    for i, (row, (start, end)) in enumerate(zip(rows, cue_bounds(rows)), start=1):
        lines += [str(i), f"{vtt_time(start)} --> {vtt_time(end)}", f"{row['top']} {row['top_prob']:.2f}", ""]
    path.write_text("\n".join(lines))


def write_png(path: Path, rows: list[dict], title: str) -> None:
    """Probabilities over time, one line per class, and the face-found ratio below; drawn on a bare Agg canvas (as
    `dfer.train.plots`), so no pyplot state is touched."""
    centres = np.array([(row["start"] + row["end"]) / 2 for row in rows])  # (W,)
    probs = np.array([row["probs"] for row in rows])  # (W, C)
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    for c, name in enumerate(rows[0]["labels"]):
        top.plot(centres, probs[:, c], label=name, marker="." if len(rows) < 40 else None)
    top.set_ylim(0, 1)
    top.set_ylabel("probability")
    top.set_title(title)
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ratio = np.array([np.nan if row["face_found_ratio"] is None else row["face_found_ratio"] for row in rows])
    bottom.fill_between(centres, 0, np.nan_to_num(ratio), step="mid", color="grey", alpha=0.5)
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("face")
    bottom.set_xlabel("seconds (window centre)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
