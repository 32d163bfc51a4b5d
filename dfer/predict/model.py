"""`dfer.load(...)` returns a `Model`: `dfer predict`, `--timeline` and `dfer explain` as methods, for notebooks and
scripts.

A Model holds what `--model` loads (one run's `Predictor`, or an `Ensemble` of several), so the encoders are built
once and every call after the first costs only the file's own work. Each method returns the records the command
prints with `--json`, made by the same functions (`predict_paths`, `file_timeline`, `explain_to`), so a script and
the command line cannot disagree. A path named that is missing, an empty folder or not a media file raises
`InputError` before anything runs, as the command refuses it; a file that passes that check and still cannot be
decoded (or one found in a folder that cannot) is the same {"path", "error"} record, and the other files go on.
`as_frame=True` turns records into a pandas DataFrame, one row per record and one `p_<label>` column per class
probability.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from dfer import checks
from dfer.adapt.saved import load_statistics, save_statistics
from dfer.errors import InputError
from dfer.extras import require
from dfer.predict.adapted import predict_adapted
from dfer.predict.explain import explain_clip, explain_to
from dfer.predict.predictor import OutputStems, Predictor, predict_paths
from dfer.predict.timeline import file_timeline, window_and_hop
from dfer.predict.timeline_files import PROB, window_record

if TYPE_CHECKING:
    import pandas as pd

PathLike = str | Path


class Model:
    """A loaded model (`dfer.load`): one run, or several fused, ready to score any number of files.

    Attributes:
        labels: the classes' display names ("angry", "fearful", ...), the order of every record's `probs`.
        classes: their codes as the training store keeps them ("ANG", "FEA", ...); for fused runs, the words.
        predictor: the underlying `dfer.predict.predictor.Predictor` (or `dfer.predict.ensemble.Ensemble`).
    """

    def __init__(self, predictor):
        self.predictor = predictor
        self._actions = None  # the face-action reader (`frames`), made on first use

    @property
    def labels(self) -> list[str]:
        return list(self.predictor.labels)

    @property
    def classes(self) -> list[str]:
        return list(self.predictor.classes)

    @property
    def warnings(self) -> list[str]:
        """What loading found worth saying, e.g. an encoder revision other than the run's."""
        return list(self.predictor.warnings)

    def describe(self) -> dict:
        """The run(s), classes, modalities, encoders, frames and device, as `dfer serve`'s /health reports them."""
        return self.predictor.describe()

    def __repr__(self) -> str:
        return (f"Model({str(self.predictor.run)!r}, {self.predictor.modalities}, {len(self.labels)} classes: "
                f"{', '.join(self.labels)}; on {self.predictor.device})")

    def predict(self, paths: PathLike | list[PathLike], as_frame: bool = False, adapt: str = "none",
                statistics: PathLike | None = None) -> list[dict] | pd.DataFrame:
        """Class probabilities for each file, as `dfer predict PATHS --json` prints them.

        Args:
            paths: a video or audio file, a photo (a one-frame clip, each its own answer), a folder (searched
                recursively for the files this model reads), or a list of them.
            adapt: "none" (each file standardised with the training set's statistics), "together" (all the files
                are one speaker: each is standardised with their statistics) or "folder" (the files of one folder
                are one speaker), as `dfer predict --adapt`.
            statistics: a speaker's saved statistics (`save_statistics`) that every file joins.
            as_frame: return a pandas DataFrame (one row per file, a `p_<label>` column per label) instead of the
                records.

        Returns:
            One record per file, with path, labels, classes, probs, top1, face_found_ratio, has_video, has_audio,
                notes and seconds (`Predictor.predict_file`); fused runs add members. A file found in a folder that
                cannot be read is {"path", "error"}, and the others go on.

        Raises:
            dfer.errors.InputError: a path named in `paths` is missing, an empty folder or not a media file, checked
                before any file is predicted (as `dfer predict` refuses it).

        Examples:
            >>> dfer.load("runs/demo").predict(["samples/cremad/VideoFlash/1001_DFA_HAP_XX.flv"])[0]["top1"]
        """
        listed = _listed(paths)
        checks.media_inputs(listed)
        saved = None if statistics is None else load_statistics(statistics)
        records = list(predict_adapted(self.predictor, listed, adapt, saved))
        return to_frame(records) if as_frame else records

    def save_statistics(self, paths: PathLike | list[PathLike], out: PathLike) -> Path:
        """Save the statistics of one speaker's recordings (`paths`: files or folders) to `out`, for later clips of
        the same speaker (`predict(..., statistics=out)`); as `dfer predict PATHS --adapt together
        --save-statistics OUT`. The file is close to a voiceprint: keep it as you would keep the recordings."""
        listed, kept = _listed(paths), []
        checks.media_inputs(listed)
        for _ in predict_adapted(self.predictor, listed, "together", keep=kept.append):
            pass
        return save_statistics(out, kept[0] if kept else {}, self.predictor.encoder_records)

    def timeline(self, path: PathLike, window: float | None = None, hop: float | None = None,
                 out: PathLike | None = None, as_frame: bool = False, adapt: str | None = None,
                 statistics: PathLike | None = None) -> dict | pd.DataFrame:
        """A whole file read in sliding windows, as `dfer predict PATH --timeline OUT --json` reads it.

        Args:
            path: one video or audio file.
            window: window length in seconds; by default the run's training clip length.
            hop: seconds between window starts; by default a third of the window.
            out: a folder for the CLI's four files (<stem>.csv, .jsonl, .vtt, .png); none are written without it.
            as_frame: return the windows as a pandas DataFrame (a row per window, a `p_<label>` column per label).
            adapt: "file" (each window standardised with the statistics of the file's windows so far) or "none"; by
                default "file" for a run trained with adaptation, else "none" (`dfer.predict.timeline`).
            statistics: a speaker's saved statistics (`save_statistics`) that every window joins.

        Returns:
            The CLI's record ({"path", "windows" (how many), "files" (with `out`), "notes"}) plus "rows", one dict
                per window, the lines of the CLI's .jsonl (start, end, top, top_prob, face_found_ratio, has_audio,
                and probs as {label: probability}). A file that fails to decode is {"path", "error"}; with
                `as_frame`, a ValueError naming the file and the reason.

        Raises:
            dfer.errors.InputError: `path` is a folder, missing, or not a media file (`dfer.checks.media_inputs`).
        """
        window, hop, _ = window_and_hop(self.predictor.config, window, hop)
        saved = None if statistics is None else load_statistics(statistics)
        record, rows = file_timeline(self.predictor, self._one(path), window, hop, None if out is None else Path(out),
                                     adapt=adapt, saved=saved)
        if as_frame:
            if "error" in record:
                raise ValueError(f"{record['path']}: {record['error']}")
            return to_frame([window_record(row) for row in rows])
        return record if "error" in record else {**record, "rows": [window_record(row) for row in rows]}

    def frames(self, path: PathLike, window: float | None = None, hop: float | None = None, landmarks: bool = False,
               adapt: str | None = None, statistics: PathLike | None = None) -> pd.DataFrame:
        """Every frame the model analyses in a whole file, one row each, with the face's actions: as py-feat's `Fex`
        (`dfer.predict.face_frames`; needs mediapipe and pandas).

        Args:
            path: one video file.
            window: window length in seconds, as in `timeline`, whose windows' sampled frames these are.
            hop: seconds between window starts, as in `timeline`.
            landmarks: add the 478 landmarks as columns x_0 .. x_477, y_*, z_* (file pixels).
            adapt: as in `timeline`.
            statistics: as in `timeline`.

        Returns:
            A pandas DataFrame, one row per analysed frame in file order (windows overlap, so rows of neighbouring
                windows interleave in time): time, window, window_start, window_end, face_found, x1, y1, x2, y2,
                actions_found, the 52 blendshapes (mediapipe's names), yaw, pitch, roll (degrees), tx, ty, tz (cm),
                one `p_<label>` per class and top (the window's answer).

        Raises:
            dfer.errors.InputError: `path` is a folder, missing, or not a media file.
            ValueError: the file cannot be decoded, or has no picture (one line naming it and why).
            ImportError: mediapipe or pandas is missing (one line saying how to install it).
        """
        from dfer.encoders.face_actions import FaceActionReader
        from dfer.media.clip_error import ClipError
        from dfer.predict.face_frames import window_actions
        from dfer.predict.timeline import FileTimeline

        pd = pandas("Model.frames")
        window, hop, _ = window_and_hop(self.predictor.config, window, hop)
        saved = None if statistics is None else load_statistics(statistics)
        timeline = FileTimeline(self.predictor, self._one(path), window, hop, adapt, saved)
        if self._actions is None:
            self._actions = FaceActionReader()
        try:
            rows = [frame for _, frames in window_actions(timeline, self._actions, landmarks) for frame in frames]
        except ClipError as error:
            raise ValueError(f"{error.path}: {error.reason}") from None
        return pd.DataFrame(rows)

    def explain(self, path: PathLike, out: PathLike | None = None) -> dict:
        """Why the model predicts what it does for one file, as `dfer explain` and `dfer predict --explain` say it.

        Args:
            path: one video or audio file.
            out: a folder for <stem>.explain.png and <stem>.explain.json; nothing is written without it.

        Returns:
            The `predict` record with `explain` (each modality alone, the ROI attention per frame and the effect of
                each step, `dfer.predict.explain.explain_batch`); with `out` also `explain_files`, exactly the line
                of `dfer predict PATH --explain OUT --json`. A file that fails to decode is {"path", "error"}.

        Raises:
            dfer.errors.InputError: `path` is a folder, missing, or not a media file (`dfer.checks.media_inputs`).
            ValueError: the model fuses several runs (an explanation reads one run's heads).
        """
        if not isinstance(self.predictor, Predictor):
            raise ValueError("explains one run's model; load one run, not several")
        target = self._one(path)
        score = (partial(explain_to, self.predictor, out=out, stems=OutputStems()) if out is not None else
                 lambda *decoded_file: explain_clip(self.predictor, *decoded_file).record)
        return next(predict_paths(self.predictor, [target], score))

    def _one(self, path: PathLike) -> Path:
        """The one file `path` names, checked as the CLI checks it: an InputError for a folder, a missing file or
        one that is not a media file (a file named is read whatever its suffix, so nothing else can be wrong yet)."""
        if Path(path).is_dir():
            raise InputError(path, "a folder; this reads one file (predict takes folders)")
        checks.media_inputs([Path(path)])
        return Path(path)


def _listed(paths: PathLike | list[PathLike]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def to_frame(records: list[dict]) -> pd.DataFrame:
    """Records (of `Model.predict`, or timeline rows) as a pandas DataFrame: one row each, their fields as columns,
    `probs` spread into a column per label named `p_<label>` (as in predictions.csv and the timeline CSV); `labels`
    and `classes` (the same in every row) left out."""
    pd = pandas("as_frame=True")
    rows = []
    for record in records:
        row = {key: value for key, value in record.items() if key not in ("labels", "classes", "probs")}
        probs = record.get("probs")
        pairs = probs.items() if isinstance(probs, dict) else zip(record.get("labels", []), probs or [])
        row.update((PROB + label, p) for label, p in pairs)
        rows.append(row)
    return pd.DataFrame(rows)


def pandas(what: str):
    """pandas, optional in the package: only tables need it."""
    require(what, "pandas", "pandas")
    import pandas as pd

    return pd
