"""Timelines: a whole file read as sliding windows, one distribution per window (`dfer predict --timeline`).

A window is made to look like a training clip: its length defaults to the run's `clip_seconds` (the median span of
its training clips, which `dfer.train.protocol.run_config` records) and T frames are sampled over it, as extraction
sampled the clips. The hop defaults to a third of the window, so every moment is seen by about three windows. The
file is streamed (`dfer.media.stream.WindowReader`): memory is flat in its length. The face is followed from window
to window (`dfer.faces.FaceTrace`), so a second face entering the frame does not take over the timeline. Each window
then goes through the run's own `Predictor.predict_clip`, the same code `dfer predict` runs on a short file, while the
next window is read in a background thread (`dfer.media.prefetch`): decoding overlaps faces and encoders.

**Adaptation** (`--adapt file`, the default for a run trained with `--adapt speaker`): a file's windows are one
speaker's session. Each window is standardised with the running statistics of the windows so far, itself included
(and of a speaker's saved statistics, `--statistics`): causal, as a live stream must be, one pass, and memory flat in
the file's length (the statistics are sums of a fixed size). The first window alone adapts nothing (a group of one
clip); from the second on the group grows, shrunk toward the training set's while it is small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfer.adapt.moments import Moments
from dfer.adapt.saved import merged
from dfer.adapt.settings import TIMELINE_ADAPT
from dfer.host_memory import release_freed_memory
from dfer.encoders.face_actions import FaceActionReader
from dfer.faces import FaceTrack
from dfer.media.clip_error import ClipError, as_clip_error
from dfer.media.decode import DecodedClip
from dfer.media.probe import stated_duration
from dfer.media.stream import AudioWindows, WindowReader
from dfer.media.find import STILL_SUFFIXES, find_media
from dfer.media.prefetch import prefetched
from dfer.media.still import is_still
from dfer.predict.predictor import OutputStems, Predictor
from dfer.predict.timeline_files import write_timeline
from dfer.store.reader import open_cache

HOP_FRACTION = 1 / 3  # default hop as a share of the window


def default_window(config: dict) -> tuple[float, str]:
    """(window seconds, where it came from) for a run's config.json.

    Runs made before config.json recorded `clip_seconds` fall back to the median span of every clip of the store they
    were trained on (nearly the same figure) when that store is still there, else to the store's `max_seconds` (the
    longest span extraction analysed, an upper bound on the clip length)."""
    if config.get("clip_seconds"):
        return float(config["clip_seconds"]), "the run's clip_seconds"
    try:
        spans = open_cache(Path(config["store"])).read_all("span")  # (n, 2)
        return round(float(np.median(spans[:, 1] - spans[:, 0])), 3), f"the median clip of {config['store']}"
    except Exception:  # the store moved or is gone: any failure to read it means the same here
        return float(config["fingerprint"]["max_seconds"]), "the store's max_seconds (the run predates clip_seconds)"


def window_and_hop(config: dict, window: float | None = None,
                   hop: float | None = None) -> tuple[float, float, str | None]:
    """(window, hop, where a default window came from) of a timeline: `window` seconds, or the run's training clip
    length (`default_window` of its config.json); `hop`, or a third of the window (HOP_FRACTION). The last item is
    None when `window` was given."""
    source = None
    if window is None:
        window, source = default_window(config)
    return window, window * HOP_FRACTION if hop is None else hop, source


def plan_windows(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """(start, end) seconds of windows every `hop` seconds over [0, duration]; the last one ends at the file's end,
    so the whole file is covered; a file shorter than a window is one window."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window ({window}) and hop ({hop}) must be positive")
    if duration <= window:
        return [(0.0, float(duration))]
    starts = np.arange(0.0, duration - window + 1e-9, hop).tolist()  # (W,)
    if starts[-1] + window < duration - 1e-6:
        starts.append(duration - window)
    return [(round(s, 6), round(s + window, 6)) for s in starts]


@dataclass
class Window:
    """One window of a timeline as the model read it."""

    clip: DecodedClip  # its frames (T, H, W, 3) (None for an audio file), frame_time (T,) from span[0], audio
    result: dict  # the model's `predict_clip` answer
    track: FaceTrack | None  # the face followed, its boxes in the frames' pixels; None: the model reads no faces


class FileTimeline:
    """The timeline of one file, window by window: iterating yields one row per window (start, end, labels, probs,
    top, top_prob, face_found_ratio, has_audio) as it is done, so a caller can show progress or stop early. After
    iterating, `notes` holds the file's recoverable oddities. Raises ClipError (or UnusableClip) naming the file."""

    def __init__(self, predictor: Predictor, path: Path, window: float, hop: float, adapt: str | None = None,
                 saved: dict[str, Moments] | None = None):
        if window > predictor.max_seconds:
            raise ValueError(f"--window {window} s is longer than the {predictor.max_seconds} s this run's encoders "
                             "take")
        self.predictor, self.path, self.window, self.hop = predictor, Path(path), window, hop
        self.duration = 0.0  # stated, known once iteration starts
        self.notes: list[str] = []
        self.adapt = timeline_adapt(predictor, adapt)
        self.saved = saved

    def __iter__(self) -> Iterator[dict]:
        for window in self.windows():
            row = window_row(window.clip.span, window.result)
            del window  # its frames and crops go before the next window is read
            yield row

    def windows(self) -> Iterator[Window]:
        """Each window as it is done: its decoded clip, the model's answer and the face track; a caller drops each
        before asking for the next, so that the memory of one window's frames is given back before the next."""
        path, predictor = self.path, self.predictor
        if is_still(path):
            raise ClipError(path, "a still image has no timeline: give it without --timeline")
        audio_only = predictor.check_readable(path)
        with as_clip_error(path):
            self.duration = stated_duration(path)
            spans = plan_windows(self.duration, self.window, self.hop)
            reader = (AudioWindows(path, spans, predictor.frames, predictor.sample_rate) if audio_only else
                      WindowReader(path, spans, predictor.frames, predictor.sample_rate,
                                   want_audio=predictor.hears,
                                   max_short_side=predictor.frame_short_side))
            self.notes = reader.notes
        trace = None  # where the followed face was last seen, on the file's clock
        running = dict(self.saved or {})  # adaptation key -> moments of the windows so far (and the saved statistics)
        if self.adapt == "file":
            self.notes = [*self.notes, "adapted: each window standardised with the statistics of the windows so far"]

        def group_of(encoded) -> dict:
            """This window's group: the windows so far, itself included (`--adapt file`), or the saved statistics and
            itself."""
            nonlocal running
            group = merged(running, predictor.moments(encoded))
            running = group if self.adapt == "file" else running
            return group

        adapting = self.adapt == "file" or bool(self.saved)
        with closing(prefetched(reader)) as clips:  # window k + 1 is read while window k is predicted
            while True:
                with as_clip_error(path):
                    clip = next(clips, None)
                    if clip is None:
                        return
                    start = clip.span[0]
                    result, track = predictor.predict_clip(path, clip, None if trace is None else trace.shifted(start),
                                                           group_of=group_of if adapting else None)
                if track is not None and track.trace is not None:
                    trace = track.trace.shifted(-start)
                yield Window(clip, result, track)
                del clip, track  # this window's frames and crops, before the memory they held is given back
                release_freed_memory()


def timeline_adapt(predictor, adapt: str | None) -> str:
    """The timeline's adaptation: `adapt` as asked, or by default "file" for a run trained with `--adapt speaker`
    (in an ensemble: any member) and "none" for every other run."""
    if adapt is None:
        return "file" if predictor.trained_adapt else "none"
    if adapt not in TIMELINE_ADAPT:
        raise ValueError(f"a timeline adapts over none or file, not {adapt!r}")
    return adapt


def window_row(span: tuple[float, float], result: dict) -> dict:
    """One window of a timeline from its `predict_clip` result."""
    probs = np.asarray(result["probs"])  # (C,)
    top = int(probs.argmax())
    return {"start": round(float(span[0]), 3), "end": round(float(span[1]), 3), "labels": result["labels"],
            "probs": result["probs"], "top": result["labels"][top], "top_prob": float(probs[top]),
            "face_found_ratio": result["face_found_ratio"], "has_audio": result["has_audio"]}


def file_timeline(predictor: Predictor, path: Path, window: float, hop: float, folder: Path | None = None,
                  stem: str | None = None, on_window: Callable[[Path, float, float], None] | None = None,
                  adapt: str | None = None, saved: dict[str, Moments] | None = None,
                  actions: FaceActionReader | None = None) -> tuple[dict, list[dict]]:
    """One file's timeline: (its record, as `dfer predict --timeline --json` prints it, and its window rows).

    The record is {"path", "windows" (how many), "files" (suffix -> path), "notes"}, or {"path", "error"} with no rows
    for a file that cannot be read. With `folder`, the four timeline files are written there as `<stem>.*` (by default
    the file's own stem) once the timeline is complete; without it there are none and the record has no "files".
    `on_window(path, end, duration)` is called after each window (the CLI's progress bar). `adapt` and `saved`: as
    `FileTimeline`'s. With `actions`, each row also names its strongest face actions, and every analysed frame's
    actions go to `<stem>.actions.csv` (`dfer.predict.face_frames`)."""
    from dfer.predict.face_frames import window_actions, write_frames_csv  # it reads a timeline's windows

    timeline, rows, frames = FileTimeline(predictor, path, window, hop, adapt, saved), [], []
    windows = ((row, []) for row in timeline) if actions is None else window_actions(timeline, actions)
    try:
        for row, frame_rows in windows:
            rows.append(row)
            frames += frame_rows
            if on_window is not None:
                on_window(path, row["end"], timeline.duration)
    except ClipError as error:
        return {"path": str(path), "error": error.reason}, []
    record = {"path": str(path), "windows": len(rows)}
    if folder is not None:
        stem = stem or Path(path).stem
        written = write_timeline(Path(folder), stem, rows, f"{Path(path).name}: {predictor.run}")
        if actions is not None:
            written["actions.csv"] = write_frames_csv(Path(folder) / f"{stem}.actions.csv", frames)
        record["files"] = {k: str(v) for k, v in written.items()}
    return {**record, "notes": timeline.notes}, rows


def timeline_paths(predictor: Predictor, paths: list[Path], folder: Path, window: float, hop: float,
                   on_window: Callable[[Path, float, float], None] | None = None, adapt: str | None = None,
                   saved: dict[str, Moments] | None = None, actions: FaceActionReader | None = None) -> Iterator[dict]:
    """Write the timeline files of each file named (folders expanded) into `folder`; one `file_timeline` record per
    file. A bad file never stops the others. Two files with the same stem get `stem`, `stem-2`, ... (`OutputStems`)."""
    files, errors = find_media(paths, predictor.suffixes - STILL_SUFFIXES)  # a folder's photos have no timeline
    yield from errors
    stems = OutputStems()
    for path in files:
        yield file_timeline(predictor, path, window, hop, folder, stems(path), on_window, adapt, saved, actions)[0]


def segment_top(rows: list[dict], span: tuple[float, float]) -> str | None:
    """The most common top emotion among the windows lying wholly inside `span` (start, end) seconds (on a tie, the
    one first reached); None when no window fits inside it."""
    tops = [row["top"] for row in rows if row["start"] >= span[0] - 1e-3 and row["end"] <= span[1] + 1e-3]
    return max(tops, key=tops.count) if tops else None
