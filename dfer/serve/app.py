"""The HTTP app of `dfer serve`: one loaded Predictor behind a small API and the recording page.

    GET  /         the page (`dfer.serve.page`): record 3 s from camera + microphone, or pick a file
    GET  /health   liveness and what is loaded
    GET  /labels   the display names of the run's classes (`labels`) and their codes (`classes`), in the order of
                   `probs`
    POST /predict  multipart `file` (mp4, WebM from MediaRecorder, flv, mov, ..., or a photo: jpg, png, webp, bmp,
                   read as a one-frame clip) and an optional `session` id -> the prediction `dfer predict --json`
                   prints, plus `timing`; a recording with a `session` is standardised with the statistics of its
                   session's recordings so far, itself included (`dfer.adapt.sessions`: in memory only, bounded; the
                   page sends one id per page load); with `?explain=true` also `explain` (`dfer.predict.explain`, and
                   `faces`: the crops the attention lies over, for the page); an upload longer than one window of the
                   run also gets `timeline`, the windows `dfer predict --timeline` writes to its .jsonl
    GET  /docs     the OpenAPI page (Swagger UI), its script and style served by this app (fastapi-offline's copies), so
                   it works with no network; there is no /redoc (ReDoc's bundle fetches its logo from a CDN)

Why this shape:
- One Predictor holds the model, loaded before the first request. Predictions run on a ThreadPoolExecutor of
  `workers` threads (2 by default: `dfer.serve.DEFAULT_WORKERS` says why), each prediction on its share of the cores
  (`dfer.serve.cores`: all of them when it runs alone), and at most `queue` more requests wait for a thread. Beyond
  that the answer is 503 at once, with Retry-After, so latency stays bounded under load instead of growing with the
  backlog.
- An upload is copied to a temp file (PyAV reads paths), deleted when the request ends, whatever happens.
- A request is decoded on a decode thread of its own, then faced, encoded and scored on a predict thread, so request
  k + 1 decodes while request k is encoded (PyAV releases the GIL while it decodes). Decoding runs at most one
  request ahead of the predict threads: a decoded clip can be tens of MB, so memory stays bounded under load.
- A timeline costs about one whole-file prediction per hop (a third of a window) of the upload, all on the worker
  that took the request, so a long upload holds that worker (and the queue behind it) for as long. Timelines are
  therefore made only of uploads up to `max_timeline_seconds` (0: never); a longer one gets the whole-file answer
  and a `timeline_notes` line saying why it has no timeline. The upload size limit bounds the rest.
- Bad input is the client's, and the status says which kind: 400 a multipart body that cannot be parsed, 413 larger
  than `max_upload_mb`, or frames of more than `max_video_pixels` (read from the header before anything is decoded:
  decoding is bounded, but an 8K stream still costs seconds of CPU per frame to decode), 415 not a decodable video
  (text, truncated beyond use), 422 a request the schema refuses (no `file`, an empty one: the schema's minLength) or
  a file that decodes but is unusable (e.g. no stream the model reads), 503 busy.
- Every error has one body, `{"detail": string}` (`dfer.serve.schema.Error`), FastAPI's own validation errors included (their list is
  joined into one line), and each status an answer may have is in the OpenAPI schema: a client reads `detail` and
  shows it, whatever went wrong. An unexpected failure is a bug of the server; it is documented too (500, with the
  same body, and the traceback in the server's log), and the API fuzz test (tests/test_serve_api.py) sends no
  request that gets one.
"""

from __future__ import annotations

import asyncio
import base64
import io
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from PIL import Image

import dfer
from dfer.adapt.sessions import MAX_ID, SessionStatistics
from dfer.media.clip_error import ClipError
from dfer.media.decode import DecodedClip
from dfer.media.probe import frame_pixels, stated_duration
from dfer.media.find import MEDIA_SUFFIXES
from dfer.media.still import is_still
from dfer.predict.ensemble import Ensemble
from dfer.predict.explain import explain_clip
from dfer.predict.predictor import UnusableClip
from dfer.predict.timeline import FileTimeline, window_and_hop
from dfer.predict.timeline_files import window_record
from dfer.serve import DEFAULT_WORKERS, MAX_VIDEO_PIXELS
from dfer.serve.cores import CoreShares
from dfer.serve.page import PAGE
from dfer.serve.schema import ERRORS, UNEXPECTED, Health, Labels, Prediction, errors

MULTIPART_SLACK = 64 * 1024  # bytes of multipart framing (boundaries, part headers) allowed on top of the file
COPY_CHUNK = 1 << 20


def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 with its list of problems joined into one `detail` line, e.g. "file: Field required", so that
    every error has the one body the schema documents."""
    problems = "; ".join(f"{'.'.join(map(str, item['loc'][1:] or item['loc']))}: {item['msg']}"
                         for item in error.errors())  # loc: ("body" | "query", field, ...)
    return JSONResponse({"detail": problems}, status_code=422)


def unexpected_error(request: Request, error: Exception) -> JSONResponse:
    """A failure nothing else caught, as the documented 500 (Starlette logs its traceback after sending this)."""
    return JSONResponse({"detail": f"unexpected server error ({type(error).__name__}); the server's log has its "
                                   "traceback"}, status_code=500)


def create_app(predictor, max_upload_mb: float = 50, workers: int = DEFAULT_WORKERS, queue: int = 4,
               max_timeline_seconds: float = 120, max_video_pixels: int = MAX_VIDEO_PIXELS) -> FastAPI:
    """The app around a loaded `dfer.predict.Predictor` (or, with `max_timeline_seconds=0`, anything with `decode`,
    `predict_decoded`, `classes`, `labels`, `describe`). Timelines use the window and hop `dfer predict --timeline`
    defaults to: the run's training clip length and a third of it (`dfer.predict.timeline.window_and_hop`). Videos
    whose frames have more than `max_video_pixels` pixels are refused (0: no limit)."""
    limit = int(max_upload_mb * 2**20)
    window = window_and_hop(predictor.config)[0] if max_timeline_seconds > 0 else None
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dfer-predict")
    shares = CoreShares()  # each prediction's PyTorch threads: the cores shared among those running when it starts
    decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dfer-decode")
    # A request holds a slot from its decoding to the end of its prediction: `workers` predicting, one decoding ahead.
    slots = asyncio.Semaphore(workers + 1)
    capacity = workers + queue
    busy = 0  # touched only on the event loop's thread, so a plain counter is race-free
    sessions = SessionStatistics()  # per-session adaptation statistics, shared by the predict threads

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for pool in (decoder, executor):
            pool.shutdown(wait=True, cancel_futures=True)

    # FastAPI's own /docs loads Swagger UI from a CDN, so it is blank offline. fastapi-offline serves the same page with
    # the script and style its wheel ships (under /static-offline-docs): it is released along with FastAPI, where
    # swagger-ui-bundle (last released 2023) ships an older Swagger UI and leaves the routes to write by hand. ReDoc is
    # off: even its offline bundle fetches a logo from cdn.redoc.ly, and /docs shows the same API.
    app = FastAPIOffline(
        title="dfer", version=dfer.__version__, lifespan=lifespan, redoc_url=None,
        description="Audio-visual dynamic facial expression recognition: emotion probabilities for a clip.",
        responses=errors(UNEXPECTED),
        exception_handlers={RequestValidationError: validation_error, Exception: unexpected_error})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE

    @app.get("/health", response_model=Health)
    def health() -> dict:
        facts = predictor.describe()  # a single run's has its encoders, a fused one's its members'
        return {
            "status": "ok", "version": dfer.__version__, "run": facts["run"], "modalities": facts["modalities"],
            "classes": facts["classes"], "labels": facts["labels"], "encoders": facts.get("encoders"),
            "members": facts.get("members"),
            "device": facts["device"], "workers": workers, "busy": busy, "capacity": capacity,
            "max_upload_mb": max_upload_mb, "max_video_pixels": max_video_pixels, "timeline_window": window,
            "max_timeline_seconds": max_timeline_seconds,
            "warnings": facts["warnings"],
        }

    @app.get("/labels", response_model=Labels)
    def labels() -> dict:
        return {"labels": predictor.labels, "classes": predictor.classes}

    # max_body_size refuses an oversized body (413) from its Content-Length, or as it streams in, before it is parsed.
    @app.post("/predict", response_model=Prediction, responses=ERRORS, max_body_size=limit + MULTIPART_SLACK)
    async def predict(file: UploadFile = File(..., description="a video clip with its audio (not empty)",
                                              json_schema_extra={"minLength": 1}),
                      explain: bool = Query(False, description="also explain it (the `explain` field)"),
                      session: str | None = Form(None, min_length=1, max_length=MAX_ID,
                                                 description="one person's recordings share an id: each is "
                                                 "standardised with the statistics of its session so far")) -> dict:
        nonlocal busy
        started = time.perf_counter()
        if busy >= capacity:
            raise HTTPException(503, f"busy: {busy} requests in progress or queued; retry shortly",
                                headers={"Retry-After": "1"})
        busy += 1
        try:
            clip = await _save_upload(file, limit, max_upload_mb)
        except BaseException:
            busy -= 1
            raise
        copied = time.perf_counter()
        group_of = None if session is None else partial(session_group, predictor, sessions, session)
        job = asyncio.ensure_future(answer(clip, explain, group_of))

        def finished(_) -> None:  # on the event loop, when the prediction ends (even if the client has gone)
            nonlocal busy
            busy -= 1
            clip.unlink(missing_ok=True)

        job.add_done_callback(finished)
        try:
            result, stamps = await asyncio.shield(job)  # a dropped request neither cancels nor frees a running job
        except TooManyPixels as error:
            raise HTTPException(413, str(error)) from error
        except UnusableClip as error:
            raise HTTPException(422, error.reason) from error
        except ClipError as error:
            raise HTTPException(415, f"not a decodable video: {error.reason}") from error
        done = time.perf_counter()
        result["path"] = file.filename or "upload"
        waited = stamps["decode"] - copied + stamps["predict"] - stamps["decoded"]
        result["timing"] = {"upload": round(copied - started, 4), "queue": round(waited, 4),
                            "decode": round(stamps["decoded"] - stamps["decode"], 4),
                            "predict": round(done - stamps["predict"], 4), "total": round(done - started, 4)}
        return result

    async def answer(path: Path, explain: bool, group_of) -> tuple[dict, dict[str, float]]:
        """Decode on the decode thread, then predict on a predict thread: (the result, when each step began and when
        decoding ended, as perf_counter stamps "decode", "decoded", "predict")."""
        loop = asyncio.get_running_loop()
        async with slots:
            (decoded, decode_seconds), stamps = await loop.run_in_executor(decoder, _decode, predictor, path,
                                                                           max_video_pixels)
            result, stamps["predict"] = await loop.run_in_executor(
                executor, _timed, predictor, path, decoded, decode_seconds, explain, window, max_timeline_seconds,
                shares, group_of)
        return result, stamps

    return app


async def _save_upload(file: UploadFile, limit: int, max_upload_mb: float) -> Path:
    """Copy the upload to a temp file (keeping a known video, audio or image suffix: a hint for the demuxer, and what
    makes a photo a photo, `dfer.media.still`); 413 past the limit, 422 when empty. The caller deletes the file."""
    suffix = Path(file.filename or "").suffix.lower()
    with tempfile.NamedTemporaryFile(prefix="dfer-upload-", suffix=suffix if suffix in MEDIA_SUFFIXES else "",
                                     delete=False) as out:
        path, size = Path(out.name), 0
        try:
            while chunk := await file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"the upload is larger than the {max_upload_mb:g} MB limit")
                out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise HTTPException(422, "empty upload (0 bytes)")
    return path


class TooManyPixels(Exception):
    """An upload whose video frames are larger than the server's pixel budget."""


def check_pixels(path: Path, limit: int) -> None:
    """Raise TooManyPixels when the file's video frames have more than `limit` pixels (0: no limit). A file without a
    video stream passes: the prediction says what it makes of it."""
    try:
        width, height = frame_pixels(path)
    except ClipError:
        return
    if limit and width * height > limit:
        raise TooManyPixels(
            f"the video is {width}x{height} ({width * height / 1e6:.1f} megapixels a frame), above this server's limit "
            f"of {limit / 1e6:.1f} megapixels (--max-video-pixels {limit}); start `dfer serve --max-video-pixels N` "
            "to raise it, or send a smaller video")


def _decode(predictor, path: Path, max_pixels: int) -> tuple[tuple[DecodedClip, float], dict[str, float]]:
    """Runs on the decode thread: the upload checked against the pixel budget, then decoded (`predictor.decode`: the
    clip and the seconds it took); and when this thread took it up and finished, as perf_counter stamps."""
    began = time.perf_counter()
    check_pixels(path, max_pixels)
    return predictor.decode(path), {"decode": began, "decoded": time.perf_counter()}


def session_group(predictor, sessions: SessionStatistics, session: str, encoded) -> dict:
    """The moments of a recording's session, the recording added (`Predictor.predict_clip`'s `group_of`)."""
    return sessions.add(session, predictor.moments(encoded))


def _timed(predictor, path: Path, decoded: DecodedClip, decode_seconds: float, explain: bool, window: float | None,
           longest: float, shares: CoreShares, group_of=None) -> tuple[dict, float]:
    """Runs on a predict thread, on its share of the cores: `_predicted`, and when this thread took it up (the end of
    its wait in the queue)."""
    began = time.perf_counter()
    with shares.share():
        return _predicted(predictor, path, decoded, decode_seconds, explain, window, longest, group_of), began


def _predicted(predictor, path: Path, decoded: DecodedClip, decode_seconds: float, explain: bool,
               window: float | None, longest: float, group_of=None) -> dict:
    """The prediction of the decoded upload: explained if asked, with its timeline when the upload is longer than
    `window`; adapted to its session with `group_of` (`session_group`)."""
    if explain and not isinstance(predictor, Ensemble):  # an explanation is of one model's computation
        explanation = explain_clip(predictor, path, decoded, decode_seconds, group_of)
        result = explanation.record
        if explanation.faces is not None:
            result["explain"]["faces"] = [_jpeg_url(face) for face in explanation.faces]
    else:
        result = predictor.predict_decoded(path, decoded, decode_seconds, group_of)
    if window is not None:
        started = time.perf_counter()
        result.update(_timeline(predictor, path, window, longest))
        result["seconds"]["timeline"] = round(time.perf_counter() - started, 4)
    return result


def _timeline(predictor, path: Path, window: float, longest: float) -> dict:
    """`timeline` and `timeline_notes` of an upload whose whole-file prediction has just succeeded: None for one no
    longer than a window (it is one window: the whole-file answer says it all; a photo is one moment) or longer than
    `longest` seconds. A window that fails to decode costs the timeline, not the whole-file answer already made."""
    try:
        if is_still(path) or (duration := stated_duration(path)) <= window:
            return {"timeline": None, "timeline_notes": []}
        if duration > longest:
            return {"timeline": None, "timeline_notes": [
                f"no timeline: {duration:.1f} s is longer than the {longest:g} s this server makes timelines of "
                f"(dfer serve --max-timeline-seconds); the answer is of its central {predictor.max_seconds:g} s"]}
        timeline = FileTimeline(predictor, path, *window_and_hop(predictor.config, window)[:2])
        rows = [window_record(row) for row in timeline]
    except ClipError as error:
        return {"timeline": None, "timeline_notes": [f"no timeline: {error.reason}"]}
    return {"timeline": rows, "timeline_notes": timeline.notes}


def _jpeg_url(face) -> str:
    """One (3, S, S) uint8 crop as a data URL: the page lays the attention heatmap over it, with no second request."""
    out = io.BytesIO()
    Image.fromarray(face.transpose(1, 2, 0)).save(out, format="JPEG", quality=85)  # (S, S, 3)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()
