"""Fixtures several test files share."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from dfer.faces.detect import FaceDetector
from dfer.media.decode import decode_clip
from dfer.predict.predictor import Predictor
from dfer.testing.sample import sample_run
from dfer.testing.synth import write_talking_pair
from dfer.testing.synthetic_store import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
VOICED = [(0.2, 0.8), (1.2, 1.8)]  # seconds of the talking pair's speech


@pytest.fixture
def one_thread():
    """Toy tensors gain nothing from intra-op threads, and when another process holds a core, every parallel op waits
    for a descheduled thread: 60 training steps went from ~1 s to ~80 s with 2 threads on a busy 2-core machine.
    Modules of toy-tensor tests use it throughout: `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    from acceptance import one_thread as on_one_thread

    with on_one_thread():
        yield


@pytest.fixture(scope="session")
def talking_pair(tmp_path_factory) -> dict[str, Path]:
    """Two-person scenes (a bundled CREMA-D head, and its smaller mirror image who talks during VOICED), one with the
    speech as a tone ("talking") and one silent ("silent"); skipped when the CREMA-D samples are absent."""
    flvs = sorted((REPO / "samples/cremad/VideoFlash").glob("*.flv"))
    if not flvs:
        pytest.skip("no CREMA-D samples")
    head = decode_clip(flvs[0], None, frames=1).frames[0][30:270, 120:320].copy()  # (240, 200, 3)
    mouth = FaceDetector()(head[None])[0].points[0, 3:5]  # (2, 2) the mouth corners
    folder = tmp_path_factory.mktemp("pair")
    return {name: write_talking_pair(folder / f"{name}.mp4", head, mouth, VOICED, silent=name == "silent")
            for name in ("talking", "silent")}


@pytest.fixture(scope="session")
def sample_made(tmp_path_factory) -> tuple[Path, Path]:
    """(store, run): the tiny trained run of the bundled sample (`dfer.testing.sample`), built once per session (per
    xdist worker) for the tests of predict, serve, explain, the API and the docs' commands."""
    folder = tmp_path_factory.getbasetemp() / "sample-run"
    return folder / "store", sample_run(folder)


@pytest.fixture(scope="session")
def predictor(sample_made) -> Predictor:
    """The tiny sample run, loaded once: the tests that share it only read it (test_browser loads its own)."""
    return Predictor(sample_made[1])


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Path:
    """The default synthetic store (`dfer.testing.synthetic_store`: 3 classes, 6 speakers in 3 folds), made once for
    the tests of stage 2 and the probe, which only read it."""
    return make_synthetic_store(tmp_path_factory.mktemp("synthetic") / "store")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(predictor):
    """uvicorn on a free loopback port in a thread, serving `predictor` (`dfer.serve.app.create_app`'s defaults);
    yields the page's URL."""
    import uvicorn

    from dfer.serve.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(predictor), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def serve() -> Callable[..., AbstractContextManager[str]]:
    """`with serve(predictor) as url:` a real `dfer serve` (uvicorn in a thread, on the loopback) for the block."""
    return serving


@pytest.fixture(scope="session")
def fused_server():
    """`dfer serve` with no --model: the bundled voice + face pair, fused; its URL."""
    from dfer.predict.ensemble import load_model

    with serving(load_model(None)) as url:
        yield url
