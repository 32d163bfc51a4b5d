"""Decode one clip into T sampled RGB frames with their real timestamps and the same time span of 16 kHz mono audio.

Everything downstream (faces, encoders, the cache) sees only `DecodedClip`, so this module and the ones it
uses (`dfer.media.probe`: what a file holds; `dfer.media.plan`: which window and times; `dfer.media.audio`) are the
one place that knows about containers, codecs, timestamps and broken files. Choices and why:

- Time is the container's presentation timeline, shifted so the container start is 0. Frames and audio samples are
  placed by their own pts, so codec priming (AAC's 1024 samples, which FFmpeg trims via the mp4 edit list) and a
  stream that starts late (CREMA-D's video starts at 27 ms, its audio at 0) stay aligned: waveform sample k is at
  `span[0] + k / sample_rate`, frame i at `span[0] + frame_time[i]`.
- Frames are chosen in one streaming pass that keeps only the best candidate per target time, so a long clip never
  sits in memory; the pass stops as soon as no later frame can win. Video and audio of one file are demuxed together.
- A frame is converted to RGB, and shrunk to `max_short_side` (swscale, as it converts), as soon as no later frame can
  replace it, so at most two frames are ever held at the stream's own size, and none as RGB or float at that size:
  16 frames of 8K video would be 1.6 GB of RGB (`dfer.faces.settings` says why 720 keeps the crops sharp). One
  swscale context converts every frame of a pass: a fresh one per frame, as `VideoFrame.reformat` makes, spends
  about a quarter of each conversion setting up its filters.
- Clips longer than `max_seconds` are analysed on their central window (`dfer.media.plan`). Seeking to it is tried,
  and on files that refuse seeks (CREMA-D's FLVs) the file is simply read from the start.
- WAV and FLAC are read with soundfile, every other audio format through PyAV, and resampled once over the whole span
  (`dfer.media.audio`).
- Bad input raises `ClipError` naming the file; a file that breaks off part-way is decoded up to where it breaks,
  with a note in `DecodedClip.notes`, as long as at least half its stated duration survives: less is more a
  fragment than the clip its label describes (an expression may peak anywhere in it), so it fails instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from dfer.host_memory import release_freed_memory
from dfer.media.audio import SOUNDFILE_SUFFIXES, AudioSpan, read_soundfile, resample, soundfile_info
from dfer.media.clip_error import ClipError, error_reason
from dfer.media.plan import central_span, segment_centres, target_times
from dfer.media.probe import check_file, open_media, stated_duration, video_stream

SEEK_PREROLL = 1.0  # seconds before the window to seek to, so the decoder and the audio have warmed up by its start
TRUNCATION_SLACK = 0.25  # seconds the media may end short of its stated duration before we re-plan on what is there
# swscale's area averaging for frames shrunk as they are decoded: the right filter for shrinking (no aliasing), and
# measured 1.5x faster than its default bilinear for 1080p -> 720p RGB (3.7 vs 5.7 ms a frame)
SHRINK_INTERPOLATION = "AREA"
MIN_READABLE = 0.5  # a truncated file is kept if its readable part is at least this share of its stated duration


@dataclass
class DecodedClip:
    frames: np.ndarray | None  # (T, H, W, 3) uint8 RGB; None when there is no video
    frame_time: np.ndarray  # (T,) float32 seconds from span[0]; audio-only: centres of T equal segments
    waveform: np.ndarray | None  # (S,) float32 mono in [-1, 1] at the requested rate; None when there is no audio
    span: tuple[float, float]  # (start, end) seconds of the analysed window within the file
    duration: float  # seconds of the whole clip (of its readable part when the file breaks off)
    notes: list[str] = field(default_factory=list)  # recoverable oddities, e.g. a truncated file
    still: bool = False  # a photo: every frame is its one picture (`dfer.media.still`)


def decode_clip(
    video: Path | None,
    audio: Path | None,
    frames: int = 16,
    sample_rate: int = 16000,
    max_seconds: float = 16.0,
    audio_required: bool = False,
    max_short_side: int | None = None,
) -> DecodedClip:
    """Decode `frames` frames sampled uniformly over the clip and the same span of audio; frames shrunk to a shorter
    side of at most `max_short_side` pixels (None: the stream's own size).

    `video` and `audio` may be the same file (decoded in one pass) or different files (the video's span is read from
    the audio file). A missing audio stream in the video's own file gives `waveform=None` unless `audio_required`;
    a separate `audio` file without audio is always an error.
    """
    if video is None and audio is None:
        raise ValueError("decode_clip needs a video path, an audio path or both")
    video = None if video is None else Path(video)
    audio = None if audio is None else Path(audio)
    for path in (video, audio):
        if path is not None:
            check_file(path)
    shared = video is not None and audio is not None and os.path.samefile(video, audio)

    if video is not None:
        clip = _decode_pyav(video, frames, sample_rate, max_seconds, want_video=True, want_audio=shared,
                            max_short_side=max_short_side)
        if audio is not None and not shared:
            clip.waveform = read_audio(audio, clip.span, sample_rate)
    elif audio.suffix.lower() in SOUNDFILE_SUFFIXES:
        duration = soundfile_info(audio).duration
        span = central_span(duration, max_seconds)
        waveform = read_soundfile(audio, span, sample_rate)
        clip = DecodedClip(None, segment_centres(span, frames), waveform, span, duration)
    else:
        clip = _decode_pyav(audio, frames, sample_rate, max_seconds, want_video=False, want_audio=True)
    if clip.waveform is None and audio_required:
        raise ClipError(audio or video, "no audio stream")
    return clip


# ---- PyAV: video, and audio inside any container ----


def _decode_pyav(
    path: Path, frames: int, sample_rate: int, max_seconds: float, want_video: bool, want_audio: bool,
    max_short_side: int | None = None,
) -> DecodedClip:
    """Plan the span from the stated duration, decode, and re-plan once on the readable part if the media ends early."""
    duration = stated_duration(path)
    notes: list[str] = []
    span = central_span(duration, max_seconds)
    result = _pyav_pass(path, span, target_times(span, frames), want_video, want_audio, max_short_side)
    if result.end == -np.inf:
        raise ClipError(path, f"nothing decodable ({result.stop_reason or 'no frames'})")
    if result.end < span[1] - TRUNCATION_SLACK:
        if result.end < MIN_READABLE * duration:
            raise ClipError(path, f"truncated: media ends at {result.end:.2f} s of a stated {duration:.2f} s, under "
                                  f"{MIN_READABLE:.0%} of it ({result.stop_reason or 'stream ended early'})")
        notes.append(
            f"media ends at {result.end:.2f} s of a stated {duration:.2f} s ({result.stop_reason or 'truncated?'}); "
            "sampled the readable part"
        )
        duration = result.end
        span = central_span(duration, max_seconds)
        result = _pyav_pass(path, span, target_times(span, frames), want_video, want_audio, max_short_side)
    if result.shrunk:  # the decoder's frames (50 MB each at 8K), freed with the pass, stay in the heap: give them back
        release_freed_memory()

    if want_video:
        rgb = np.stack(result.picks)  # (T, H, W, 3)
        frame_time = (result.pick_time - span[0]).astype(np.float32)  # (T,)
    else:
        rgb, frame_time = None, segment_centres(span, frames)
    waveform = None if result.audio is None else resample(result.audio, result.audio_rate, sample_rate, span)
    return DecodedClip(rgb, frame_time, waveform, span, duration, notes)


def read_audio(path: Path, span: tuple[float, float], sample_rate: int) -> np.ndarray:
    """The given span of a separate audio file, at `sample_rate`."""
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        return read_soundfile(path, span, sample_rate)
    result = _pyav_pass(path, span, None, want_video=False, want_audio=True)
    return resample(result.audio, result.audio_rate, sample_rate, span)


class RGBFrames:
    """Converts decoded frames to RGB arrays of one size: the first frame's, shrunk to a shorter side of at most
    `max_short_side` (a mid-stream size change is scaled to it). Converting the same frame again (it can be the
    nearest to several targets, or windows) returns the same array; the frame is known by its pts, so it is not kept
    alive for that (50 MB at 8K)."""

    def __init__(self, path: Path, max_short_side: int | None = None):
        self.path, self.max_short_side = path, max_short_side
        self.size: tuple[int, int] | None = None  # (width, height) of every array
        self.shrinks = False  # whether the stream's frames are larger than the arrays
        self._last: tuple[int, np.ndarray] | None = None  # the last frame converted: its pts, its array
        self._swscale = VideoReformatter()  # its context is built on the first frame and reused while nothing changes

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self._last is not None and self._last[0] == frame.pts:
            return self._last[1]
        if self.size is None:
            self.size = shrunk_size(frame.width, frame.height, self.max_short_side)
            self.shrinks = self.size != (frame.width, frame.height)
        try:
            rgb = self._swscale.reformat(frame, width=self.size[0], height=self.size[1], format="rgb24",
                                         interpolation=SHRINK_INTERPOLATION).to_ndarray()  # (H, W, 3)
        except (av.error.FFmpegError, ValueError) as e:  # e.g. a pixel format swscale cannot convert
            raise ClipError(self.path, f"cannot convert frames to RGB ({error_reason(e)})") from e
        self._last = (frame.pts, rgb)
        return rgb

    def settle(self, picks: list, current: av.VideoFrame) -> None:
        """Convert, in place, every pick that is still a decoded frame other than `current`: frames come in pts
        order, so a pick the newest frame did not replace will not be replaced by any later one."""
        for i, pick in enumerate(picks):
            if isinstance(pick, av.VideoFrame) and pick is not current:
                picks[i] = self(pick)


def shrunk_size(width: int, height: int, max_short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the shorter side is at most max_short_side (None: unchanged), aspect kept."""
    scale = 1.0 if max_short_side is None else min(1.0, max_short_side / min(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class _PassResult:
    picks: list  # T (H, W, 3) uint8 RGB arrays (or None before any frame arrived): the nearest frame to each target
    pick_time: np.ndarray  # (T,) absolute seconds of each pick
    audio: np.ndarray | None  # (span_length * audio_rate,) float32 mono at the native rate; None: no audio stream
    audio_rate: int
    end: float  # seconds where the decoded media ended (video when wanted, else audio)
    stop_reason: str | None  # why reading stopped early, if an error stopped it
    shrunk: bool = False  # the stream's frames were larger than the picks


def _pyav_pass(
    path: Path, span: tuple[float, float], targets: np.ndarray | None, want_video: bool, want_audio: bool,
    max_short_side: int | None = None,
) -> _PassResult:
    """One demux pass over [span] keeping, per target time, the nearest video frame, and the span's audio samples."""
    container = _open_at(path, span[0] - SEEK_PREROLL)
    try:
        origin = (container.start_time or 0) / av.time_base  # container timeline -> clip seconds
        vstream = video_stream(container, path) if want_video else None
        astream = container.streams.audio[0] if want_audio and container.streams.audio else None
        if want_audio and not want_video and astream is None:
            raise ClipError(path, "no audio stream")
        if vstream is not None:
            bounded_threads(vstream)
        rgb = RGBFrames(path, max_short_side)

        n = 0 if targets is None else len(targets)
        picks: list = [None] * n
        pick_time = np.full(n, np.nan)  # (T,)
        best = np.full(n, np.inf)  # (T,) distance of each pick to its target
        audio = AudioSpan(span, astream.codec_context.sample_rate) if astream is not None else None
        video_end, video_done = -np.inf, vstream is None
        stop_reason = None
        try:
            for packet in container.demux([s for s in (vstream, astream) if s is not None]):
                for frame in packet.decode():
                    if packet.stream is astream:
                        audio.add(frame, float(astream.time_base), origin)
                        continue
                    if frame.pts is None:  # FFmpeg fills in a best-effort pts; a frame without one cannot be placed
                        continue
                    t = float(frame.pts * frame.time_base) - origin
                    video_end = t + float((frame.duration or 0) * frame.time_base)
                    closer = np.abs(targets - t) < best  # (T,)
                    for i in np.flatnonzero(closer):
                        picks[i], pick_time[i], best[i] = frame, t, abs(targets[i] - t)
                    rgb.settle(picks, frame)
                    video_done = t >= targets[-1]  # frames come in pts order: later ones are only farther away
                if video_done and (audio is None or audio.done):
                    break
        except av.error.FFmpegError as e:
            stop_reason = error_reason(e)
        rgb.settle(picks, None)
    finally:
        container.close()
    end = video_end if vstream is not None else (audio.end if audio is not None else -np.inf)
    if not video_done and stop_reason is None and vstream is not None:
        stop_reason = "stream ended early"
    return _PassResult(picks, pick_time, None if audio is None else audio.samples, 0 if audio is None else audio.rate,
                       end, stop_reason, rgb.shrinks)


def _open_at(path: Path, seconds: float) -> av.container.InputContainer:
    """Open for reading, positioned at or before `seconds`; files that refuse to seek are read from the start."""
    container = open_media(path)
    if seconds <= 0:
        return container
    try:
        container.seek(int((seconds * av.time_base)) + (container.start_time or 0), backward=True)
    except av.error.FFmpegError:
        container.close()
        container = open_media(path)
    return container


FRAME_THREAD_PIXELS = 4096 * 2160  # above this many pixels a frame, the decoder gets 2 slice threads, no frame threads


def bounded_threads(vstream: av.VideoStream) -> None:
    """Let FFmpeg pick its threading, but for frames larger than 4K only slice threading, on at most 2 threads: frame
    threading keeps a few frames per thread, each 50 MB of YUV at 8K, so one thread per core of a large server would
    hold gigabytes, and even 2 frame threads held 200-250 MB more in `predict` and `dfer serve` (the 8K file of
    `bench/faces.py`, whose timeline decodes its next window while it reads this one), for a tenth less time."""
    vstream.codec_context.thread_type = "AUTO"
    if vstream.codec_context.width * vstream.codec_context.height > FRAME_THREAD_PIXELS:
        vstream.codec_context.thread_type = "SLICE"
        vstream.codec_context.thread_count = 2
