"""Read a long file as a stream of (overlapping) windows, each a `DecodedClip` like the one `decode_clip` makes of a
short clip, so everything downstream (faces, encoders, heads) treats a window as a training clip.

One demux pass from the start: no seeks (CREMA-D's FLVs refuse them, and overlapping windows would re-read the same
packets). Memory stays flat in the file's length because only the windows open at the current time are kept, each
as its T best frames so far (per target time the nearest frame, as `decode_clip` picks them) and its own span of
native-rate audio. A window opens when either stream reaches its start (less a preroll, as the streams interleave
loosely) and closes as soon as both have passed its end. With hop = window / 3 about four windows are open at once,
so a few T frames are held whatever the length; `WindowReader.peak_frames` says how many were. A picked frame is
converted to RGB, shrunk to `max_short_side`, as soon as no later frame can replace it (`dfer.media.decode`), so a
large video holds its own-size frames only while they are the newest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from dfer.media.audio import AudioSpan, resample
from dfer.media.clip_error import ClipError, error_reason
from dfer.media.decode import SEEK_PREROLL, DecodedClip, RGBFrames, bounded_threads, read_audio
from dfer.media.plan import target_times
from dfer.media.probe import check_file, open_media, stated_duration, video_stream

# Seconds the audio may lag the video before a window stops waiting for it: past this the audio stream is taken to
# have ended (a shorter audio track), so one bad stream cannot keep every later window open.
AUDIO_SKEW = 5.0


@dataclass
class _OpenWindow:
    span: tuple[float, float]  # absolute seconds
    targets: np.ndarray  # (T,) absolute seconds of the frames to pick
    picks: list  # T (H, W, 3) uint8 RGB, or the av.VideoFrame still nearest (None until the first frame arrives)
    pick_time: np.ndarray  # (T,) absolute seconds of each pick
    best: np.ndarray  # (T,) distance of each pick to its target
    audio: AudioSpan | None

    def offer(self, frame: av.VideoFrame, t: float) -> None:
        closer = np.abs(self.targets - t) < self.best  # (T,)
        for i in np.flatnonzero(closer):
            self.picks[i], self.pick_time[i], self.best[i] = frame, t, abs(self.targets[i] - t)


class WindowReader:
    """Iterate over `DecodedClip`s of the given spans (absolute (start, end) seconds, in order) of one file.

    frames: T frames sampled per window; sample_rate: of each window's waveform; want_audio: read the audio stream
    (a file without one gives windows with `waveform=None`); max_short_side: frames are shrunk to at most this
    shorter side (None: the stream's own size). After iterating, `notes` holds recoverable oddities (a
    file that ends before its stated duration: the windows past its end are left out) and `peak_frames` the most
    decoded frames held at once.
    """

    def __init__(self, path: Path | str, spans: list[tuple[float, float]], frames: int = 16,
                 sample_rate: int = 16000, want_audio: bool = True, max_short_side: int | None = None):
        self.path, self.spans, self.frames = Path(path), list(spans), frames
        self.sample_rate, self.want_audio = sample_rate, want_audio
        self.notes: list[str] = []
        self.peak_frames = 0
        self._rgb = RGBFrames(self.path, max_short_side)

    def __iter__(self) -> Iterator[DecodedClip]:
        check_file(self.path)
        duration = stated_duration(self.path)
        container = open_media(self.path)
        try:
            yield from self._windows(container, duration)
        finally:
            container.close()

    def _windows(self, container: av.container.InputContainer, duration: float) -> Iterator[DecodedClip]:
        origin = (container.start_time or 0) / av.time_base  # container timeline -> file seconds
        vstream = video_stream(container, self.path)
        bounded_threads(vstream)
        astream = container.streams.audio[0] if self.want_audio and container.streams.audio else None
        waiting, open_ = list(self.spans), []  # spans not yet opened; open windows, oldest first
        video_time = audio_time = -np.inf
        stop_reason = None
        try:
            for packet in container.demux([s for s in (vstream, astream) if s is not None]):
                for frame in packet.decode():
                    if frame.pts is None:  # a frame without a pts cannot be placed
                        continue
                    t = float(frame.pts * frame.time_base) - origin
                    while waiting and max(t, video_time, audio_time) >= waiting[0][0] - SEEK_PREROLL:
                        open_.append(self._open(waiting.pop(0), astream))
                    if packet.stream is astream:
                        audio_time = t
                        for window in open_:
                            window.audio.add(frame, float(astream.time_base), origin)
                    else:
                        video_time = t
                        for window in open_:
                            window.offer(frame, t)
                            self._rgb.settle(window.picks, frame)
                        held = {id(f) for w in open_ for f in w.picks if f is not None}
                        self.peak_frames = max(self.peak_frames, len(held))
                while open_ and self._closed(open_[0], video_time):
                    yield self._clip(open_.pop(0), duration)
        except av.error.FFmpegError as e:
            stop_reason = error_reason(e)
        readable = [window for window in open_ if window.picks[0] is not None]
        if len(readable) < len(open_) + len(waiting):
            self.notes.append(f"media ends at {max(video_time, 0):.2f} s of a stated {duration:.2f} s "
                              f"({stop_reason or 'truncated?'}); the windows past its end are left out")
        if not readable and self._rgb.size is None:
            raise ClipError(self.path, f"nothing decodable ({stop_reason or 'no frames'})")
        for window in readable:
            yield self._clip(window, duration)

    def _open(self, span: tuple[float, float], astream) -> _OpenWindow:
        n = self.frames
        audio = AudioSpan(span, astream.codec_context.sample_rate) if astream is not None else None
        return _OpenWindow(span, target_times(span, n), [None] * n, np.full(n, np.nan), np.full(n, np.inf), audio)

    @staticmethod
    def _closed(window: _OpenWindow, video_time: float) -> bool:
        """Both streams have passed the window: no later frame is nearer a target, no later audio falls inside it."""
        video_done = video_time >= window.targets[-1]  # frames come in pts order: later ones are only farther away
        audio_done = window.audio is None or window.audio.done or video_time >= window.span[1] + AUDIO_SKEW
        return video_done and audio_done

    def _clip(self, window: _OpenWindow, duration: float) -> DecodedClip:
        self._rgb.settle(window.picks, None)
        rgb = np.stack(window.picks)  # (T, H, W, 3)
        frame_time = (window.pick_time - window.span[0]).astype(np.float32)  # (T,) from the window start
        waveform = (None if window.audio is None
                    else resample(window.audio.samples, window.audio.rate, self.sample_rate, window.span))  # (S,)
        return DecodedClip(rgb, frame_time, waveform, window.span, duration)


class AudioWindows:
    """`WindowReader` for an audio-only file: each span's waveform, read on its own (`read_audio`: soundfile seeks
    sample-exactly in WAV and FLAC, PyAV seeks in the rest), with the centres of T equal segments as its frame times,
    as `decode_clip` gives an audio-only clip. `notes` is there for the same interface and stays empty."""

    def __init__(self, path: Path | str, spans: list[tuple[float, float]], frames: int = 16,
                 sample_rate: int = 16000):
        self.path, self.spans, self.frames, self.sample_rate = Path(path), list(spans), frames, sample_rate
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[DecodedClip]:
        duration = stated_duration(self.path)
        for span in self.spans:
            frame_time = (target_times(span, self.frames) - span[0]).astype(np.float32)  # (T,)
            yield DecodedClip(None, frame_time, read_audio(self.path, span, self.sample_rate), span, duration)
