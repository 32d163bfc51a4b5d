"""decode_clip: frame sampling, audio span and alignment, windows of long clips, and every kind of bad input."""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from dfer.media import decode
from dfer.media.clip_error import ClipError
from dfer.media.decode import decode_clip
from dfer.media.probe import frame_pixels
from dfer.testing.synth import write_audio, write_clip

REPO = Path(__file__).resolve().parents[1]
CREMAD = REPO / "samples" / "cremad" / "VideoFlash"
SHARED = REPO.parent / "shared" / "data"


def _tone_match(waveform: np.ndarray, start: float, tone_hz: float, sample_rate: int = 16000) -> float:
    """Correlation of the waveform with the tone write_clip wrote, placed at `start` seconds of the file.

    A 1024-sample (AAC priming) shift at 440 Hz would leave 0.2 of a period and drop this to ~0.2.
    """
    t = start + np.arange(len(waveform)) / sample_rate
    ref = np.sin(2 * np.pi * tone_hz * t)
    inner = slice(sample_rate // 10, -sample_rate // 10)  # the encoder smears the first and last few ms
    w, r = waveform[inner], ref[inner]
    return float(np.dot(w, r) / np.linalg.norm(w) / np.linalg.norm(r))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2.0, fps=25)


def test_frames_sampled_uniformly_with_real_timestamps(clip):
    d = decode_clip(clip, clip, frames=16)
    assert d.frames.shape == (16, 120, 160, 3) and d.frames.dtype == np.uint8
    assert d.frame_time.dtype == np.float32 and d.frame_time.shape == (16,)
    assert d.span == pytest.approx((0.0, 2.0), abs=0.03) and d.duration == pytest.approx(2.0, abs=0.03)
    assert np.all(np.diff(d.frame_time) > 0)
    assert d.frame_time[0] >= 0 and d.frame_time[-1] <= d.span[1] - d.span[0]
    targets = (np.arange(16) + 0.5) * (d.span[1] - d.span[0]) / 16
    assert np.abs(d.frame_time - targets).max() <= 0.5 / 25 + 1e-6  # the nearest frame at 25 fps
    assert np.all(np.abs(d.frame_time * 25 - np.round(d.frame_time * 25)) < 1e-3)  # real pts, on the 25 fps grid
    assert not np.array_equal(d.frames[0], d.frames[-1])


def test_audio_covers_the_span_at_16k_and_aligns_with_video_time(clip):
    d = decode_clip(clip, clip, sample_rate=16000)
    assert d.waveform.dtype == np.float32 and d.waveform.ndim == 1
    assert len(d.waveform) == round((d.span[1] - d.span[0]) * 16000)
    assert np.abs(d.waveform).max() <= 1.0
    assert _tone_match(d.waveform, d.span[0], 440.0) > 0.95
    spectrum = np.abs(np.fft.rfft(d.waveform))
    assert np.fft.rfftfreq(len(d.waveform), 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_video_without_audio(tmp_path):
    path = write_clip(tmp_path / "silent.mp4", seconds=1.0, audio=False)
    d = decode_clip(path, path)
    assert d.waveform is None and d.frames.shape[0] == 16
    with pytest.raises(ClipError, match="no audio stream") as e:
        decode_clip(path, path, audio_required=True)
    assert e.value.path == path


@pytest.mark.parametrize("suffix, rate", [(".flac", 16000), (".wav", 44100)])
def test_audio_only_files(tmp_path, suffix, rate):
    path = write_audio(tmp_path / f"voice{suffix}", seconds=3.0, sample_rate=rate, tone_hz=440.0)
    d = decode_clip(None, path, frames=8, sample_rate=16000)
    assert d.frames is None and d.span == pytest.approx((0.0, 3.0)) and d.duration == pytest.approx(3.0)
    assert len(d.waveform) == 48000
    np.testing.assert_allclose(d.frame_time, (np.arange(8) + 0.5) * 3.0 / 8, atol=1e-6)
    assert _tone_match(d.waveform, 0.0, 440.0) > 0.99


def test_separate_audio_file_is_read_over_the_video_span(tmp_path):
    video = write_clip(tmp_path / "v.mp4", seconds=1.5, audio=False)
    audio = write_audio(tmp_path / "a.wav", seconds=1.5, sample_rate=22050)
    d = decode_clip(video, audio)
    assert d.frames.shape[0] == 16 and len(d.waveform) == round((d.span[1] - d.span[0]) * 16000)


class _RefusesSeek:
    """A container that, like CREMA-D's FLVs, will not seek."""

    def __init__(self, container):
        self._container = container

    def seek(self, *args, **kwargs):
        raise av.error.PermissionError(1, "Operation not permitted")

    def __getattr__(self, name):
        return getattr(self._container, name)


@pytest.mark.parametrize("seekable", [True, False])
def test_long_clip_uses_the_central_window(tmp_path, monkeypatch, seekable):
    path = write_clip(tmp_path / "long.mp4", seconds=24.0, fps=10, size=(64, 48), tone_hz=440.0)
    if not seekable:
        real_open = decode.open_media
        monkeypatch.setattr(decode, "open_media", lambda p: _RefusesSeek(real_open(p)))
    d = decode_clip(path, path, frames=16, max_seconds=8.0)
    assert d.duration == pytest.approx(24.0, abs=0.05)
    assert d.span == pytest.approx((8.0, 16.0), abs=0.03)
    assert np.all(np.diff(d.frame_time) > 0) and 0 <= d.frame_time[0] and d.frame_time[-1] <= 8.0
    assert np.abs(d.frame_time - (np.arange(16) + 0.5) * 0.5).max() <= 0.05 + 1e-6
    assert len(d.waveform) == 8 * 16000
    assert _tone_match(d.waveform, d.span[0], 440.0) > 0.95


class _Unseekable(io.RawIOBase):
    """A write-only stream the muxer cannot seek back in, as when a browser streams a recording."""

    def __init__(self, file):
        self.file = file

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self.file.write(data)


@pytest.mark.skipif("libvpx" not in av.codecs_available, reason="PyAV built without libvpx")
def test_webm_without_a_stated_duration(tmp_path):
    path = tmp_path / "recording.webm"
    with open(path, "wb") as file, av.open(_Unseekable(file), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 5 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.duration is None  # what MediaRecorder uploads look like
    d = decode_clip(path, None)
    assert d.span == pytest.approx((0.0, 2.0), abs=0.05) and np.all(np.diff(d.frame_time) > 0)


def test_corrupted_files_raise_only_clip_errors(tmp_path, clip):
    rng = np.random.default_rng(0)
    data = clip.read_bytes()
    for k in range(12):
        broken = bytearray(data[: rng.integers(1, len(data))] if k % 2 else data)
        for i in rng.integers(0, len(broken), 20):
            broken[i] = rng.integers(0, 256)
        path = tmp_path / f"broken{k}.mp4"
        path.write_bytes(bytes(broken))
        try:
            d = decode_clip(path, path)
        except ClipError as e:
            assert e.path == path
        else:
            assert d.frames.shape[0] == 16


def test_non_ascii_path(tmp_path, clip):
    path = shutil.copy(clip, tmp_path / "émotion 表情.mp4")
    d = decode_clip(path, path)
    assert d.frames.shape[0] == 16 and d.waveform is not None


def _zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("this is a note, not a video\n")


def _half_mp4(path: Path) -> None:  # PyAV writes the index (moov) last, so half a file has none
    data = write_clip(path, seconds=1.0).read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "make, reason", [(_zero_bytes, "empty"), (_text, "not a decodable"), (_half_mp4, "not a decodable")]
)
def test_bad_files_raise_clip_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(ClipError, match=reason) as e:
        decode_clip(path, path)
    assert e.value.path == path and str(path) in str(e.value)


def test_missing_file_and_missing_video_stream(tmp_path):
    with pytest.raises(ClipError, match="file not found"):
        decode_clip(tmp_path / "nope.mp4", None)
    audio = write_audio(tmp_path / "voice.flac", seconds=1.0)
    with pytest.raises(ClipError, match="no video stream"):
        decode_clip(audio, audio)
    _text(tmp_path / "noise.wav")
    with pytest.raises(ClipError, match="not a decodable audio file"):
        decode_clip(None, tmp_path / "noise.wav")


def test_clip_error_survives_pickling():  # it crosses DataLoader worker processes
    e = pickle.loads(pickle.dumps(ClipError(Path("a/b.mp4"), "no audio stream")))
    assert (e.path, e.reason, str(e)) == (Path("a/b.mp4"), "no audio stream", "a/b.mp4: no audio stream")


def _truncation_sources() -> list[Path]:
    found = sorted(CREMAD.glob("*.flv"))[:1] + sorted((SHARED / "ravdess_av").glob("Actor_01/*.mp4"))
    return found or [pytest.param(None, marks=pytest.mark.skip(reason="no CREMA-D samples or shared RAVDESS clips"))]


@pytest.mark.parametrize("source", _truncation_sources(), ids=lambda p: getattr(p, "name", "none"))
def test_truncated_file_decodes_its_readable_part_with_a_note(tmp_path, source):
    data = source.read_bytes()
    path = tmp_path / f"cut{source.suffix}"
    path.write_bytes(data[: len(data) * 3 // 4])
    full = decode_clip(source, source)
    d = decode_clip(path, path)  # these formats keep their index up front, so the first 3/4 are readable
    assert d.frames.shape[0] == 16 and np.all(np.diff(d.frame_time) >= 0)
    assert d.notes and "readable part" in d.notes[0]
    assert 0.5 * full.duration < d.duration < 0.9 * full.duration
    assert d.frame_time[-1] <= d.span[1] and len(d.waveform) == round((d.span[1] - d.span[0]) * 16000)


def test_truncated_file_under_half_its_duration_fails(tmp_path):
    data = write_clip(tmp_path / "whole.mp4", seconds=4.0, size=(64, 48), faststart=True).read_bytes()
    kept, cut = tmp_path / "kept.mp4", tmp_path / "cut.mp4"
    kept.write_bytes(data[: len(data) * 4 // 5])  # ~3 s of 4 readable: decoded, with a note
    cut.write_bytes(data[: len(data) // 2])  # ~1.7 s of 4: a fragment
    d = decode_clip(kept, kept)
    assert 2.0 < d.duration < 4.0 and "readable part" in d.notes[0]
    with pytest.raises(ClipError, match=r"truncated: media ends at 1\.\d+ s of a stated 4\.00 s") as e:
        decode_clip(cut, cut)
    assert e.value.path == cut and str(cut) in str(e.value)


def test_real_cremad_clips():
    clips = sorted(CREMAD.glob("*.flv"))
    if not clips:
        pytest.skip(f"no CREMA-D samples in {CREMAD}")
    for path in clips:
        d = decode_clip(path, path)
        assert d.frames.shape == (16, 360, 480, 3) and 1.8 < d.duration < 2.5 and not d.notes
        assert np.all(np.diff(d.frame_time) > 0) and d.frame_time[0] > 0  # the video starts at 27 ms
        assert len(d.waveform) == round(d.duration * 16000) and np.abs(d.waveform).max() > 0.05


def test_real_ravdess_av_samples():
    with_audio = SHARED / "ravdess_av" / "Actor_01" / "01-01-07-02-02-01-01.mp4"
    video_only = SHARED / "ravdess_av" / "Actor_19" / "02-01-08-02-01-01-19.mp4"
    if not (with_audio.exists() and video_only.exists()):
        pytest.skip("shared RAVDESS AV samples absent")
    d = decode_clip(with_audio, with_audio)
    assert d.frames.shape == (16, 480, 640, 3) and len(d.waveform) == round(d.duration * 16000)
    d = decode_clip(video_only, video_only)
    assert d.frames.shape == (16, 720, 720, 3) and d.waveform is None


@pytest.fixture(scope="module")
def large_clip(tmp_path_factory) -> Path:
    """1 s of 2560x1440 video (3.7 megapixels a frame): a synthetic large frame, quick to write."""
    return write_clip(tmp_path_factory.mktemp("large") / "large.mp4", seconds=1.0, fps=8, size=(2560, 1440))


def test_large_frames_are_shrunk_as_they_are_decoded(large_clip, monkeypatch):
    """Frames come out at the bounded size, and no RGB copy at full size is ever made: numpy's allocations (which
    tracemalloc sees) peak below a single full-size RGB frame (2560 x 1440 x 3 = 11 MB) for 8 frames. The decoder's
    full-size frames, freed with the pass, are given back to the system then (only when frames were shrunk)."""
    import tracemalloc

    released = []
    monkeypatch.setattr(decode, "release_freed_memory", lambda: released.append(True))
    tracemalloc.start()
    try:
        clip = decode_clip(large_clip, large_clip, frames=8, max_short_side=360)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clip.frames.shape == (8, 360, 640, 3)
    assert peak < 2560 * 1440 * 3, f"{peak / 2**20:.1f} MB held at once"
    assert released == [True]
    decode_clip(large_clip, large_clip, frames=8, max_short_side=1440)  # already that small: nothing to give back
    assert released == [True]
    full = decode_clip(large_clip, None, frames=2)  # unbounded, as stores made before issue 21 decode
    assert full.frames.shape == (2, 1440, 2560, 3)
    np.testing.assert_allclose(clip.frame_time[[0, -1]], decode_clip(large_clip, None, 8).frame_time[[0, -1]])


def test_a_long_file_streams_bounded_frames_too(large_clip):
    from dfer.media.stream import WindowReader

    windows = list(WindowReader(large_clip, [(0.0, 0.6), (0.4, 1.0)], frames=4, max_short_side=360))
    assert [w.frames.shape for w in windows] == [(4, 360, 640, 3)] * 2
    assert frame_pixels(large_clip) == (2560, 1440)


def _segment(path: Path, size: tuple[int, int], first_pts: int, frames: int = 10) -> bytes:
    """MPEG-TS bytes of `frames` H.264 frames of `size` from pts `first_pts`, a bar growing across them."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 40 * i % 256, np.uint8)
            image[:, : 9 * i, 1] = 200
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = first_pts + i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def test_a_stream_that_changes_size_comes_out_at_one_size_in_pyavs_own_pixels(tmp_path):
    """A stream whose frames change size part-way (two MPEG-TS segments, 640x480 then 800x400) comes out at the
    first frame's shrunk size, each frame exactly as PyAV's own `VideoFrame.reformat` converts it: one swscale
    context serves the whole pass, and it follows the change."""
    path = tmp_path / "two-sizes.ts"
    path.write_bytes(_segment(tmp_path / "a.ts", (640, 480), 0) + _segment(tmp_path / "b.ts", (800, 400), 10))
    clip = decode_clip(path, None, frames=8, max_short_side=240)
    assert clip.frames.shape == (8, 240, 320, 3)
    with av.open(str(path)) as container:
        origin = container.start_time / av.time_base
        frames = {round(float(f.pts * f.time_base) - origin, 3): f for f in container.decode(video=0)}
    assert {f.width for f in frames.values()} == {640, 800}
    for t, rgb in zip(clip.frame_time, clip.frames):
        expected = frames[round(float(t), 3)].reformat(width=320, height=240, format="rgb24",
                                                       interpolation=decode.SHRINK_INTERPOLATION).to_ndarray()
        np.testing.assert_array_equal(rgb, expected, err_msg=f"frame at {t:.2f} s")
    assert clip.frame_time[-1] > 0.4  # frames of the second size are among them


@pytest.mark.parametrize("size, threading", [((1920, 1080), ("AUTO", None)), ((7680, 4320), ("SLICE", 2))])
def test_frames_above_4k_get_two_slice_threads_and_no_frame_threads(size, threading):
    """Frame threading holds a few whole frames a thread (50 MB each at 8K); above 4K the decoder gets slice threads
    only, 2 of them. Below, FFmpeg's own choice (AUTO, a thread per core)."""
    from types import SimpleNamespace

    context = SimpleNamespace(width=size[0], height=size[1], thread_type=None, thread_count=None)
    decode.bounded_threads(SimpleNamespace(codec_context=context))
    assert (context.thread_type, context.thread_count) == threading
