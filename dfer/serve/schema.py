"""The published shape of `dfer serve`'s API: each answer's body as a pydantic model (FastAPI turns them into the
OpenAPI schema at /openapi.json), and the error statuses every route documents. One body for every error (`Error`):
a client reads `detail` and shows it, whatever went wrong."""

from __future__ import annotations

from pydantic import BaseModel


class FusedRun(BaseModel):
    """One run of a fused server (`dfer serve` with no --model, or several): what /health says of it."""
    run: str
    weight: float
    modalities: str
    labels: list[str]
    encoders: dict[str, str]  # stream -> encoder


class Health(BaseModel):
    status: str
    version: str
    run: str  # a fused server's runs joined by " + "
    modalities: str
    classes: list[str]  # the store's codes (a fused server's: the words, as its members' codes differ)
    labels: list[str]  # their display names
    encoders: dict[str, str] | None  # stream -> encoder of a single run (None: fused, see members)
    members: list[FusedRun] | None = None  # a fused server's runs, each with its encoders (None: a single run)
    device: str
    workers: int
    busy: int  # requests being predicted or waiting for a worker
    capacity: int  # workers + queue: one more is refused with 503
    max_upload_mb: float
    max_video_pixels: int  # width x height of a frame; larger videos get 413
    timeline_window: float | None  # seconds; longer uploads get `timeline` (None: timelines are off)
    max_timeline_seconds: float  # longer uploads get no timeline
    warnings: list[str]


class Labels(BaseModel):
    labels: list[str]  # display names, what the page shows
    classes: list[str]  # the store's codes, in the same order


class Explain(BaseModel):
    """`dfer.predict.explain.explain_batch`'s JSON: the same checkpoint with a modality hidden, each step masked."""

    av: dict[str, float] | None  # label -> probability with both streams (None for a one-stream run)
    audio: dict[str, float] | None  # with the video hidden as modality dropout hides it (None: a video-only run)
    video: dict[str, float] | None  # with the audio hidden (None: an audio-only run)
    available: list[str]  # which of av, audio, video this run can answer
    present: dict[str, bool]  # stream -> whether this clip gives it any step
    notes: list[str]
    steps: list[dict]  # per step: step, time, audio / video (read there), top1_drop, shift, top1_without
    attention: dict | None = None  # video runs: grid, frames (T x grid x grid) ROI attention over the patch grid
    actions: dict | None = None  # words (the face actions that moved most), named, frames_read; or unavailable
    faces: list[str] | None = None  # per step, the face crop the vision encoder saw as a JPEG data URL (None: no track)


class Window(BaseModel):
    """One window of an upload's timeline: `dfer.predict.timeline_files.window_record`, a line of the CLI's .jsonl."""

    start: float  # seconds in the file
    end: float
    top: str  # the most probable label in this window
    top_prob: float
    face_found_ratio: float | None
    has_audio: bool
    probs: dict[str, float]  # label -> probability


class Member(BaseModel):
    """One run of a fused answer (`dfer serve --model A --model B`): its own answer, or why it abstained."""
    run: str
    weight: float | None = None
    labels: list[str] | None = None
    probs: list[float] | None = None
    top1: str | None = None
    abstained: str | None = None  # e.g. "no face", "no audio track"


class Prediction(BaseModel):
    path: str  # the uploaded file's name
    labels: list[str]  # the display names of the run's classes
    classes: list[str]  # their codes, as the store keeps them
    probs: list[float]  # aligned with labels and classes, sums to 1
    top1: str  # the most probable label
    face_found_ratio: float | None  # share of the sampled frames with a detected face; None without video
    has_video: bool
    has_audio: bool
    notes: str
    seconds: dict[str, float]  # per pipeline stage: decode, faces, encoders, heads
    timing: dict[str, float]  # upload (copy to disk), queue (waits for a thread), decode, predict, total
    explain: Explain | None = None  # only when asked (`?explain=true`), and of one run (not a fused answer)
    members: list[Member] | None = None  # a fused answer's runs (`dfer.predict.ensemble`)
    timeline: list[Window] | None = None  # only for an upload longer than one window (`timeline_window` in /health)
    timeline_notes: list[str] = []  # the timeline's recoverable oddities, or why a long upload has none


class Error(BaseModel):
    """The body of every error this server answers."""
    detail: str  # what went wrong, one line for a person to read


def errors(*statuses: tuple[int, str]) -> dict:
    """OpenAPI `responses` of these (status, meaning) pairs, each with the `Error` body."""
    return {status: {"model": Error, "description": text} for status, text in statuses}


UNEXPECTED = (500, "an unexpected failure: a bug of the server (its log has the traceback); please report it")
ERRORS = errors(
    (400, "a multipart body that cannot be parsed"),
    (413, "the upload is larger than --max-upload-mb, or its frames have more pixels than --max-video-pixels"),
    (415, "not a decodable video file"),
    (422, "no `file` field, an empty file, `explain` not a boolean, a `session` id longer than 128 characters, or a "
          "file that decodes but holds nothing the model can use"),
    (503, "busy: every worker and queue slot is taken; retry after Retry-After seconds"),
)
