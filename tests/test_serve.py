"""`dfer serve`'s API through FastAPI's TestClient: predictions on the sample in several containers, a long upload's
timeline, bad uploads (never a 500), temp files removed, concurrent requests, and 503 when the queue is full."""

from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from dfer.media.decode import decode_clip
from dfer.testing.sample import SAMPLE
from dfer.predict.timeline import HOP_FRACTION, FileTimeline, default_window
from dfer.predict.timeline_files import window_record
from dfer.serve.app import create_app
from dfer.serve.cores import CoreShares, cores_each
from dfer.testing.synth import write_concatenation

CLIP = sorted((SAMPLE / "VideoFlash").glob("*.flv"))[0]


@pytest.fixture(autouse=True)
def server_threads():
    """The test's own predictions on the thread count a lone prediction of the server runs on (`cores_each(1)`),
    so both sum in the same order and their answers can be compared to the last float digit."""
    before = torch.get_num_threads()
    torch.set_num_threads(cores_each(1))
    yield
    torch.set_num_threads(before)


@pytest.fixture
def uploads(tmp_path, monkeypatch) -> Path:
    """The folder the app's temp files go to, so a test can see that none is left behind."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def client(predictor, uploads):
    with TestClient(create_app(predictor, max_upload_mb=2, workers=1, queue=4)) as client:
        yield client
    assert not list(uploads.iterdir())


def post(client: TestClient, name: str, content: bytes, kind: str = "video/mp4"):
    return client.post("/predict", files={"file": (name, content, kind)})


def transcode(src: Path, dst: Path, video_codec: str, audio_codec: str, rate: int, seconds: float = 1.5) -> Path:
    """The first `seconds` of `src` re-encoded, e.g. as VP8 + Opus WebM, what Chromium's MediaRecorder writes."""
    with av.open(str(src)) as source:
        pictures = [f.to_ndarray(format="rgb24") for f in source.decode(video=0) if f.time <= seconds]
    wave = decode_clip(src, src, frames=1, sample_rate=rate).waveform[: round(seconds * rate)]  # (S,)
    with av.open(str(dst), "w") as out:
        video = out.add_stream(video_codec, rate=30)
        video.height, video.width = pictures[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio = out.add_stream(audio_codec, rate=rate, layout="mono")  # every stream before the first packet
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        sample_format = audio.codec_context.codec.audio_formats[0].name
        size = 960 if "opus" in audio_codec else 1024  # 20 ms Opus frames; AAC's fixed 1024
        for start in range(0, len(wave), size):
            chunk = np.pad(wave[start : start + size], (0, max(0, start + size - len(wave))))[None]  # (1, size)
            if sample_format.startswith("s16"):
                chunk = (chunk * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=sample_format, layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return dst


WORDS = ["angry", "disgust", "fearful", "happy", "neutral", "sad"]  # CREMA-D's ANG, DIS, FEA, HAP, NEU, SAD


def test_health_labels_page_and_docs(client, predictor):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["classes"] == predictor.classes and health["busy"] == 0
    assert health["labels"] == WORDS
    assert client.get("/labels").json() == {"labels": WORDS, "classes": ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]}
    page = client.get("/")
    assert page.status_code == 200 and 'id="record"' in page.text and 'id="bars"' in page.text
    # the page names its bars and its top emotion from the answers' `labels`, the words
    assert 'drawBars($("bars"), "bar-", body.labels, body.classes' in page.text
    assert "body.labels.indexOf(body.top1)" in page.text and 'fetch("predict?explain=true"' in page.text
    assert "/predict" in client.get("/openapi.json").json()["paths"]


class Assets(HTMLParser):
    """The URLs a page loads: every script's src and every link's href."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src") or tag == "link" and attrs.get("href"):
            self.urls.append(attrs.get("src") or attrs["href"])


def test_api_docs_load_nothing_from_another_host(client):
    """Swagger UI comes from this server (fastapi-offline's copy), so /docs works offline; ReDoc, which fetches its
    logo from a CDN even when bundled, is off."""
    response = client.get("/docs")
    assert response.status_code == 200 and "/openapi.json" in response.text
    parser = Assets()
    parser.feed(response.text)
    assert parser.urls and all(url.startswith("/") and not url.startswith("//") for url in parser.urls), parser.urls
    assert "cdn" not in response.text.lower() and "://" not in response.text
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in parser.urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
        assert kinds[Path(url).suffix] in asset.headers["content-type"], (url, asset.headers["content-type"])
    assert client.get("/redoc").status_code == 404


def test_predicts_the_sample_like_the_cli(client, predictor):
    response = post(client, CLIP.name, CLIP.read_bytes(), "video/x-flv")
    assert response.status_code == 200, response.text
    body = response.json()
    direct = predictor.predict_file(CLIP)
    assert body["path"] == CLIP.name and body["labels"] == direct["labels"] == WORDS and body["top1"] == direct["top1"]
    assert body["classes"] == predictor.classes and body["top1"] in WORDS
    np.testing.assert_allclose(body["probs"], direct["probs"], atol=1e-6)
    assert set(body["timing"]) == {"upload", "queue", "decode", "predict", "total"} and body["timing"]["total"] > 0
    assert body["timing"]["decode"] > 0 and body["seconds"]["decode"] <= body["timing"]["decode"]
    assert body["timeline"] is None and body["timeline_notes"] == []  # no longer than one window: no timeline


def test_a_long_upload_gets_its_timeline(client, predictor, tmp_path):
    """Three sample clips in a row (~7 s, several windows): the whole-file answer as for any upload, and the windows
    `dfer predict --timeline` writes to its .jsonl, with its default window and hop, covering the file."""
    long = tmp_path / "long.mp4"
    blocks = write_concatenation(long, sorted((SAMPLE / "VideoFlash").glob("*.flv"))[:3])
    response = post(client, long.name, long.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    whole = predictor.predict_file(long)["probs"]  # the file's central max_seconds, as for any upload
    np.testing.assert_allclose(body["probs"], whole, atol=1e-6)
    window, _ = default_window(predictor.config)
    assert client.get("/health").json()["timeline_window"] == window
    cli = [window_record(row) for row in FileTimeline(predictor, long, window, window * HOP_FRACTION)]
    windows = body["timeline"]
    assert len(windows) == len(cli) > 3 and body["timeline_notes"] == []
    assert windows[0]["start"] == 0 and windows[-1]["end"] == pytest.approx(blocks[-1][1], abs=0.05)
    for got, want in zip(windows, cli):
        assert {**got, "probs": None} == {**want, "probs": None}
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-6) and list(got["probs"]) == WORDS

    with TestClient(create_app(predictor, workers=1, max_timeline_seconds=5)) as capped:  # too long: no timeline
        body = post(capped, long.name, long.read_bytes()).json()
    assert body["timeline"] is None and "--max-timeline-seconds" in body["timeline_notes"][0]
    np.testing.assert_allclose(body["probs"], whole, atol=1e-6)


@pytest.mark.parametrize("name, video_codec, audio_codec, rate", [
    ("recording.webm", "libvpx", "libopus", 48000),  # what Chromium's and Firefox's MediaRecorder upload
    ("clip.mov", "libx264", "aac", 44100),
])
def test_other_containers(client, tmp_path, name, video_codec, audio_codec, rate):
    clip = transcode(CLIP, tmp_path / name, video_codec, audio_codec, rate)
    response = post(client, name, clip.read_bytes())
    assert response.status_code == 200, response.text
    assert response.json()["has_audio"] and response.json()["face_found_ratio"] > 0.5


def test_bad_uploads_are_4xx_with_a_reason(client):
    empty = post(client, "empty.mp4", b"")
    assert empty.status_code == 422 and empty.json() == {"detail": "empty upload (0 bytes)"}
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["Body_predict_predict_post"]["properties"]["file"]["minLength"] == 1  # the schema says so too
    text = post(client, "notes.txt", b"this is not a video\n" * 50, "text/plain")
    assert text.status_code == 415 and "not a decodable video" in text.json()["detail"]
    garbage = post(client, "noise.webm", np.random.default_rng(0).bytes(50_000), "video/webm")
    assert garbage.status_code == 415
    missing = client.post("/predict")  # FastAPI's own validation error, with the one error body every error has
    assert missing.status_code == 422 and missing.json() == {"detail": "file: Field required"}
    not_bool = client.post("/predict?explain=maybe", files={"file": ("a.mp4", b"x", "video/mp4")})
    assert not_bool.status_code == 422 and not_bool.json()["detail"].startswith("explain: ")
    truncated = post(client, "cut.flv", CLIP.read_bytes()[:2000], "video/x-flv")
    assert truncated.status_code in (415, 422), truncated.text  # only the header survives: nothing to decode


def test_too_large_is_413(predictor, uploads):
    with TestClient(create_app(predictor, max_upload_mb=0.1)) as client:
        just_over = post(client, "big.mp4", b"\0" * (110 * 1024))  # body within the multipart slack: counted
        assert just_over.status_code == 413 and "0.1 MB" in just_over.json()["detail"]
        assert post(client, "huge.mp4", b"\0" * (2 * 2**20)).status_code == 413  # refused from its Content-Length
        assert post(client, CLIP.name, CLIP.read_bytes()[:50_000]).status_code != 413
    assert not list(uploads.iterdir())


def test_concurrent_requests_all_succeed(client):
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda i: post(client, CLIP.name, CLIP.read_bytes()), range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert len({tuple(r.json()["probs"]) for r in responses}) == 1  # one model, same answer every time
    assert max(r.json()["timing"]["queue"] for r in responses) > 0  # they did wait for the single worker


class Blocking:
    """A stand-in predictor whose predictions wait until the test lets them finish (no run: no timelines)."""

    classes = ["CAL", "ANG"]
    labels = ["calm", "angry"]

    def __init__(self):
        self.release = threading.Event()

    def describe(self) -> dict:
        return {"run": "stub", "classes": self.classes, "labels": self.labels, "modalities": "av", "encoders": {},
                "device": "cpu", "warnings": []}

    def decode(self, path: Path) -> tuple[None, float]:
        return None, 0.0

    def predict_decoded(self, path: Path, decoded: None, decode_seconds: float, group_of=None) -> dict:
        assert self.release.wait(20)
        return {"path": str(path), "labels": self.labels, "classes": self.classes, "probs": [0.25, 0.75],
                "top1": "angry",
                "face_found_ratio": 1.0, "has_video": True, "has_audio": True, "notes": "", "seconds": {}}


def test_full_queue_answers_503_then_recovers(uploads):
    stub = Blocking()
    with TestClient(create_app(stub, workers=1, queue=1, max_timeline_seconds=0)) as client, \
            ThreadPoolExecutor(2) as pool:
        accepted = [pool.submit(post, client, "a.mp4", b"x") for _ in range(2)]  # one running, one queued
        deadline = time.monotonic() + 10
        while client.get("/health").json()["busy"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        refused = post(client, "c.mp4", b"x")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        stub.release.set()
        assert [f.result().status_code for f in accepted] == [200, 200]
        assert post(client, "d.mp4", b"x").status_code == 200
    assert not list(uploads.iterdir())


class Overlapping(Blocking):
    """A stand-in whose first prediction finishes only once the second upload has started decoding."""

    def __init__(self):
        super().__init__()
        self.decoding = [threading.Event(), threading.Event()]
        self.overlapped = False

    def decode(self, path: Path) -> tuple[None, float]:
        self.decoding[sum(event.is_set() for event in self.decoding)].set()
        return None, 0.0

    def predict_decoded(self, path: Path, decoded: None, decode_seconds: float, group_of=None) -> dict:
        if not self.release.is_set():  # the first prediction
            self.overlapped = self.decoding[1].wait(20)
            self.release.set()
        return super().predict_decoded(path, decoded, decode_seconds)


def test_the_next_upload_decodes_while_this_one_is_predicted(uploads):
    """One predict worker: upload 2 is decoded while upload 1 is still being predicted (with decoding on the predict
    worker, prediction 1 would wait for a decode that waits for it)."""
    stub = Overlapping()
    with TestClient(create_app(stub, workers=1, queue=4, max_timeline_seconds=0)) as client, \
            ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, client, "a.mp4", b"x")
        assert stub.decoding[0].wait(10)  # upload 1 is in before upload 2
        second = pool.submit(post, client, "b.mp4", b"x")
        assert [first.result().status_code, second.result().status_code] == [200, 200]
        assert set(first.result().json()["timing"]) == {"upload", "queue", "decode", "predict", "total"}
    assert stub.overlapped
    assert not list(uploads.iterdir())


class Counting(Blocking):
    """A stand-in that records the PyTorch thread count each prediction ran with."""

    def __init__(self):
        super().__init__()
        self.release.set()
        self.threads = []

    def predict_decoded(self, path: Path, decoded: None, decode_seconds: float, group_of=None) -> dict:
        self.threads.append(torch.get_num_threads())
        return super().predict_decoded(path, decoded, decode_seconds)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_lone_prediction_runs_on_every_core(uploads, workers):
    stub = Counting()
    torch.set_num_threads(3)  # the thread that makes the app holds another count: a worker sets its own
    with TestClient(create_app(stub, workers=workers, max_timeline_seconds=0)) as client:
        assert all(post(client, f"{k}.mp4", b"x").status_code == 200 for k in range(3))
    assert stub.threads == [cores_each(1)] * 3


class SideBySide(Counting):
    """The first prediction to get here waits for a second one to start beside it."""

    def __init__(self):
        super().__init__()
        self.second = threading.Event()
        self.lock = threading.Lock()

    def predict_decoded(self, path: Path, decoded: None, decode_seconds: float, group_of=None) -> dict:
        with self.lock:  # both may arrive at once: exactly one of them is first
            first = not self.threads
            self.threads.append(torch.get_num_threads())
        if first:
            assert self.second.wait(20)
        else:
            self.second.set()
        return Blocking.predict_decoded(self, path, decoded, decode_seconds)


def test_predictions_side_by_side_share_the_cores(uploads):
    stub = SideBySide()
    with TestClient(create_app(stub, workers=2, queue=2, max_timeline_seconds=0)) as client, \
            ThreadPoolExecutor(2) as pool:
        answers = [pool.submit(post, client, f"{k}.mp4", b"x") for k in range(2)]
        assert [a.result().status_code for a in answers] == [200, 200]
        assert post(client, "2.mp4", b"x").status_code == 200  # alone again
    # the one that took its share first got every core, the other half; which of them reached the stub first is
    # the threads' race, so the pair is compared in order of size
    assert sorted(stub.threads[:2], reverse=True) == [cores_each(1), cores_each(2)]
    assert stub.threads[2] == cores_each(1)


def test_a_share_is_the_cores_over_the_predictions_running_when_it_starts():
    shares = CoreShares(cores=4)
    with shares.share() as first:
        with shares.share() as second, shares.share() as third:
            assert (first, second, third) == (4, 2, 1) and torch.get_num_threads() == 1
        with shares.share() as fourth:
            assert fourth == 2
    assert shares.running == 0
    one_core = CoreShares(cores=1)
    with one_core.share() as alone, one_core.share() as beside:
        assert alone == beside == 1  # never none


def test_a_video_above_the_pixel_budget_is_413_naming_the_limit_and_flag(uploads):
    stub = Blocking()
    stub.release.set()
    with TestClient(create_app(stub, max_timeline_seconds=0, max_video_pixels=480 * 360 - 1)) as client:
        refused = post(client, CLIP.name, CLIP.read_bytes(), "video/x-flv")  # 480x360
        assert refused.status_code == 413
        detail = refused.json()["detail"]
        assert "480x360" in detail and "--max-video-pixels" in detail and "0.2 megapixels" in detail
        assert client.get("/health").json()["max_video_pixels"] == 480 * 360 - 1
    with TestClient(create_app(stub, max_timeline_seconds=0, max_video_pixels=480 * 360)) as client:
        assert post(client, CLIP.name, CLIP.read_bytes(), "video/x-flv").status_code == 200  # at the limit: served
    assert not list(uploads.iterdir())


def test_the_cli_default_pixel_budget_is_the_apps():
    import dfer.cli.serve as command
    from dfer.serve import app

    assert command.MAX_VIDEO_PIXELS == app.MAX_VIDEO_PIXELS == 3840 * 2160
