"""The sampling plan: which window of a clip is analysed, and the times its frames are taken at.

Clips longer than `max_seconds` are analysed on their central window (expressions rarely sit at the edges, and the
encoders' cost grows with length); T frames are taken at the centres of T equal parts of the window.
"""

from __future__ import annotations

import numpy as np


def central_span(duration: float, max_seconds: float) -> tuple[float, float]:
    if duration <= max_seconds:
        return (0.0, duration)
    start = (duration - max_seconds) / 2
    return (start, start + max_seconds)


def target_times(span: tuple[float, float], n: int) -> np.ndarray:
    """Absolute times of the centres of n equal sub-intervals of the span."""
    return span[0] + (np.arange(n) + 0.5) * (span[1] - span[0]) / n  # (T,)


def segment_centres(span: tuple[float, float], n: int) -> np.ndarray:
    return (target_times(span, n) - span[0]).astype(np.float32)  # (T,) relative to the span start
