"""Explanations of one prediction, computed from the run's own model and masks, never from a stand-in:

- attention: what the ROI compressor read on each face crop. `DferHeads.roi_attention` writes out the softmax its
  forward applies (queries, keys, landmark prior and saliency biases), here averaged over heads and queries: a
  distribution over the patch grid per frame. The landmark prior (the part of the logits the landmarks add, averaged
  over queries) is given beside it, so one can see where the attention follows the landmarks and where it does not.
- modalities: the same checkpoint with one stream hidden exactly as modality dropout hides it in training
  (`DferHeads.forward(hide=...)`), so "audio" and "video" are answers the model was trained to give alone.
- steps: occlusion. Step t is masked as a training crop masks the frames outside its window (video frame t and the
  audio frames of segment t, `DferHeads.forward(keep_steps=...)`); a step's effect is how far that moves the
  prediction.
- a run of several seeds' heads (`dfer.heads.members`) is explained as it answers: every variant is the members'
  mean log-probability, and the attention their mean.
- actions: the face actions that moved most in the clip against its own quietest frames, in words
  (`dfer.predict.action_words`); without mediapipe, one line saying they are unavailable.

All variants of a clip run as one batch through one forward.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dfer.heads import DferHeads, HeadMembers, ZeroShot
from dfer.inference.score import autocast
from dfer.media.decode import DecodedClip
from dfer.predict.action_words import explain_actions
from dfer.predict.explain_figure import save_explanation_png
from dfer.predict.predictor import GroupOf, OutputStems, Predictor

DIGITS = 6  # probabilities and attention are rounded to this many decimals in the JSON
# What a crop's heat is, in the colour bar's two short lines (they fit beside one row of crops)
HEAT = "ROI attention per patch\n(each frame sums to 1)"
ZEROSHOT_HEAT = "class evidence per patch\n(zero-shot CAM; sums to 1)"
ZEROSHOT_NOTE = ("a zero-shot run: the heat on each crop is where the encoder's own classifier found evidence for "
                 "the answer (its class activation map), not an attention")


@dataclass
class Explanation:
    """A prediction record with its `explain` field, and the arrays its picture needs."""

    record: dict  # `Predictor.record(...)` plus "explain": the JSON of `explain_batch`
    faces: np.ndarray | None  # (T, 3, S, S) uint8 the face crops the vision encoder saw; None without a video model
    landmarks: np.ndarray | None  # (T, 5, 2) crop pixels, NaN without a face
    attention: np.ndarray | None  # (T, g, g) mean attention over heads and queries, each frame sums to 1
    prior: np.ndarray | None  # (T, g, g) mean landmark prior logit bonus over queries
    heat: str = HEAT  # what `attention` is, in words: the ROI attention, or a zero-shot run's class evidence


def variants(streams: tuple[str, ...], T: int) -> tuple[list[str], dict[str, torch.Tensor], torch.Tensor]:
    """The rows of the explanation batch: names, hide (stream -> (R,) bool) and keep_steps (R, T) bool.

    Row 0 is the model as predict runs it: named "av" for the historic two streams (then rows "audio", video hidden,
    and "video", audio hidden), after a one-stream run's stream, else "all" (then one row per stream, the others
    hidden); then one row per step t with that step masked."""
    if set(streams) == {"audio", "video"}:
        names = ["av", "audio", "video"]
    else:
        names = list(streams) if len(streams) == 1 else ["all", *streams]
    hide = {s: torch.tensor([name not in (names[0], s) for name in names] + [False] * T) for s in streams}  # (R,)
    keep = torch.ones(len(names) + T, T, dtype=torch.bool)  # (R, T)
    keep[len(names):] = ~torch.eye(T, dtype=torch.bool)  # row len(names) + t masks step t
    return names, hide, keep


@torch.no_grad()
def explain_batch(heads: DferHeads | HeadMembers | ZeroShot, batch: dict[str, torch.Tensor],
                  labels: list[str]) -> tuple[dict, dict]:
    """batch: one clip as the heads read it (B = 1) -> (the JSON-ready explanation, arrays: "probs" (C,) the full
    prediction unrounded, and for a video model "attention" and "prior" (T, g, g)).

    JSON: `av`, `audio`, `video` (label -> probability, or None where the run has no such input), `available`,
    `present` (stream -> whether this clip gives it any step), `notes`, and `steps` (one entry per step: time, which
    streams it holds, and what masking it does to the prediction)."""
    heads.eval()
    device = batch["frame_time"].device
    T = batch["frame_time"].shape[1]
    names, hide, keep = variants(heads.streams, T)
    R = len(names) + T
    rows = {key: value.expand(R, *value.shape[1:]) for key, value in batch.items()}  # (R, ...) views of the clip
    with autocast(device):
        out = heads(rows, {s: h.to(device) for s, h in hide.items()}, keep.to(device))
    probs = out["logits"].float().softmax(-1).cpu().numpy()  # (R, C)
    full = probs[0]  # (C,) what predict answers
    top = int(full.argmax())

    answers = dict(zip(names, probs))  # name -> (C,)
    present = {s: bool(out[f"mask_{s}"][0].any()) for s in heads.streams}  # (T,) -> any step at all
    explanation = {
        **{key: _named(answers.get(key), labels) for key in dict.fromkeys(["av", "audio", "video", *names])},
        "available": names,
        "present": present,
        "notes": _notes(heads.streams, present) + ([ZEROSHOT_NOTE] if isinstance(heads, ZeroShot) else []),
        "steps": [_step(t, batch, out, probs[len(names) + t], full, top, labels, heads.streams) for t in range(T)],
    }
    arrays = {"probs": full}
    if isinstance(heads, ZeroShot) or len(heads.roi):  # a stream of faces: where its attention lies
        attention = heads.roi_attention(batch)
        g = round(attention.weights.shape[-1] ** 0.5)  # patches per side
        arrays["attention"] = attention.weights[0].mean((1, 2)).reshape(T, g, g).float().cpu().numpy()  # (T, g, g)
        arrays["prior"] = attention.prior[0].mean(1).reshape(T, g, g).float().cpu().numpy()  # (T, g, g)
        explanation["attention"] = {"grid": g, "frames": np.round(arrays["attention"], DIGITS).tolist()}
    return explanation, arrays


def _named(probs: np.ndarray | None, labels: list[str]) -> dict[str, float] | None:
    return None if probs is None else {label: round(float(p), DIGITS) for label, p in zip(labels, probs)}


def _notes(streams: tuple[str, ...], present: dict[str, bool]) -> list[str]:
    """Plain words for what the numbers cannot say on their own."""
    notes = []
    if len(streams) == 1 and streams[0] not in ("audio", "video"):
        notes.append(f"a run of one stream: only `{streams[0]}` is available")
    elif len(streams) == 1:
        other = "video" if streams[0] == "audio" else "audio"
        notes.append(f"{'an' if streams[0] == 'audio' else 'a'} {streams[0]}-only run: it never reads {other}, "
                     f"so only `{streams[0]}` is available")
    for stream, there in present.items():
        if not there and set(streams) == {"audio", "video"}:
            notes.append(f"this clip gives no {stream} step (no {'face' if stream == 'video' else 'audio'}): "
                         f"`{stream}` is the model's answer with nothing to go on, and `av` equals the other stream's")
        elif not there and len(streams) > 1:
            notes.append(f"this clip gives no {stream} step: `{stream}` is the model's answer with nothing to go on")
    return notes


def _step(t: int, batch: dict, out: dict, masked: np.ndarray, full: np.ndarray, top: int, labels: list[str],
          streams: tuple[str, ...]) -> dict:
    """One step's entry: its time, the streams the fusion read there, and the effect of masking it: the drop in the
    predicted class's probability, and the total variation distance between the two distributions."""
    return {
        "step": t,
        "time": round(float(batch["frame_time"][0, t]), 4),
        **{stream: bool(out[f"mask_{stream}"][0, t]) for stream in streams if f"mask_{stream}" in out},
        "top1_drop": round(float(full[top] - masked[top]), DIGITS),
        "shift": round(float(0.5 * np.abs(full - masked).sum()), DIGITS),
        "top1_without": labels[int(masked.argmax())],
    }


def explain_file(predictor: Predictor, path: Path | str) -> Explanation:
    """Predict one file and explain the prediction. Raises ClipError / UnusableClip for bad input, as predict does."""
    path = Path(path)
    return explain_clip(predictor, path, *predictor.decode(path))


def explain_clip(predictor: Predictor, path: Path, decoded: DecodedClip, decode_seconds: float,
                 group_of: GroupOf | None = None) -> Explanation:
    """`explain_file` of a file decoded already (`Predictor.decode`: the clip, and the seconds that took), so that
    decoding can run ahead (`dfer predict --explain` over several files, `dfer serve`); `group_of` as in
    `Predictor.predict_clip`: the model explained is the one adapted to the clip's group."""
    encoded = predictor.encode_clip(path, decoded, seconds={"decode": decode_seconds})
    started = time.perf_counter()
    batch, note = predictor.batch_for(encoded, None if group_of is None else group_of(encoded))
    batch = {key: value.to(predictor.device) for key, value in batch.items()}
    explanation, arrays = explain_batch(predictor.heads, batch, predictor.labels)
    explanation["actions"] = explain_actions(decoded, encoded.track, len(decoded.frame_time),
                                             encoded.row.get("video/face_actions"))
    encoded.seconds["explain"] = time.perf_counter() - started
    record = predictor.with_note(predictor.record(encoded, arrays.pop("probs")), note)
    track = encoded.track
    return Explanation({**record, "explain": explanation}, None if track is None else track.faces,
                       None if track is None else track.landmarks, arrays.get("attention"), arrays.get("prior"),
                       ZEROSHOT_HEAT if isinstance(predictor.heads, ZeroShot) else HEAT)


def write_explanation(explanation: Explanation, out: Path | str, stem: str) -> dict[str, str]:
    """`out/<stem>.explain.png` and `out/<stem>.explain.json` (the record with its `explain` field) -> their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"png": str(save_explanation_png(explanation, out / f"{stem}.explain.png")),
             "json": str(out / f"{stem}.explain.json")}
    Path(files["json"]).write_text(json.dumps(explanation.record, indent=1))
    return files


def explain_to(predictor: Predictor, path: Path, decoded: DecodedClip, decode_seconds: float, out: Path | str,
               stems: OutputStems | None = None) -> dict:
    """Explain one decoded file (as `explain_clip`) and write its PNG and JSON into `out`: the record with `explain`
    and `explain_files`; a `predict_paths` score. `stems` names the files; pass one namer to every call writing into
    the same folder, so a/x.mp4 and b/x.mp4 get x and x-2."""
    explanation = explain_clip(predictor, path, decoded, decode_seconds)
    stem = (stems or OutputStems())(path)
    return {**explanation.record, "explain_files": write_explanation(explanation, out, stem)}
