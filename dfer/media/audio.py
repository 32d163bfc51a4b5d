"""Audio: a native-rate span of decoded frames made mono, resampled to the rate the encoders take; WAV and FLAC read
directly.

WAV and FLAC are read with soundfile (sample-exact, seekable); every other audio format goes through PyAV's pass
(`dfer.media.decode`) so its timestamps are honoured, its frames collected here by `AudioSpan`. Resampling uses soxr
(the resampler librosa itself uses), once over the whole span.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from dfer.media.clip_error import ClipError

SOUNDFILE_SUFFIXES = {".wav", ".flac"}  # lossless formats soundfile reads sample-exactly and seeks in


class AudioSpan:
    """Collects decoded audio frames into a native-rate mono buffer covering exactly the span.

    Frames are placed by their pts; a frame within a couple of time-base ticks of where the previous one ended is
    taken as contiguous (FLV stamps in whole milliseconds, so an MP3 frame of 26.12 ms is stamped 26 ms) — otherwise
    that rounding would leave holes or overlaps of a few samples at every frame boundary. Parts of the span the stream
    does not cover stay silent.
    """

    def __init__(self, span: tuple[float, float], rate: int):
        self.span = span
        self._allocate(rate)
        self.end = -np.inf  # seconds where the last frame ended

    def _allocate(self, rate: int) -> None:
        self.rate = rate
        self.samples = np.zeros(round((self.span[1] - self.span[0]) * rate), np.float32)  # (span_length * rate,)
        self.cursor: int | None = None  # buffer index where the previous frame ended

    @property
    def done(self) -> bool:
        return self.cursor is not None and self.cursor >= len(self.samples)

    def add(self, frame: av.AudioFrame, time_base: float, origin: float) -> None:
        if self.cursor is None and frame.sample_rate != self.rate:  # the header's rate can differ (HE-AAC)
            self._allocate(frame.sample_rate)
        x = _mono(frame)  # (n,)
        slack = int(np.ceil(2 * max(time_base, 1 / self.rate) * self.rate))
        if frame.pts is None:
            pos = self.cursor or 0
        else:
            pos = round((float(frame.pts * frame.time_base) - origin - self.span[0]) * self.rate)
            if self.cursor is not None and abs(pos - self.cursor) <= slack:
                pos = self.cursor
        a, b = max(pos, 0), min(pos + len(x), len(self.samples))
        if a < b:
            self.samples[a:b] = x[a - pos : b - pos]
        self.cursor = pos + len(x)
        self.end = self.span[0] + self.cursor / self.rate


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """Average the channels of a decoded audio frame into float32 in [-1, 1]."""
    x = frame.to_ndarray()  # planar: (C, n); packed: (1, n * C)
    if not frame.format.is_planar:
        x = x.reshape(-1, frame.layout.nb_channels).T  # (C, n)
    if x.dtype.kind == "u":  # u8: 128 is silence
        x = (x.astype(np.float32) - 128) / 128
    elif x.dtype.kind == "i":
        x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    return x.astype(np.float32).mean(axis=0)  # (n,)


def resample(x: np.ndarray, rate: int, sample_rate: int, span: tuple[float, float]) -> np.ndarray:
    """Resample to `sample_rate` and fix the length to exactly round(span_length * sample_rate)."""
    if rate != sample_rate:
        x = soxr.resample(x, rate, sample_rate, quality="HQ")
    n = round((span[1] - span[0]) * sample_rate)
    x = x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))  # resampling may round the length by a sample
    return np.clip(x, -1.0, 1.0).astype(np.float32)  # (S,)


def soundfile_info(path: Path) -> sf._SoundFileInfo:
    try:
        return sf.info(str(path))
    except sf.SoundFileError as e:
        raise ClipError(path, f"not a decodable audio file ({e})") from e


def read_soundfile(path: Path, span: tuple[float, float], sample_rate: int) -> np.ndarray:
    rate = soundfile_info(path).samplerate
    try:
        x, rate = sf.read(
            str(path), start=round(span[0] * rate), stop=round(span[1] * rate), dtype="float32", always_2d=True
        )  # (n, C)
    except sf.SoundFileError as e:
        raise ClipError(path, f"not a decodable audio file ({e})") from e
    return resample(x.mean(axis=1), rate, sample_rate, span)
