"""Area resampling of many rectangles of a batch of images at once, from one summed-area table.

MTCNN reads its images only through area resampling (`F.interpolate(mode="area")`, i.e. adaptive average pooling):
each level of its image pyramid is the whole image resampled, and each box RNet or ONet scores is a crop resampled to
24 or 48 pixels. facenet-pytorch pools every box in its own call, a few hundred tiny calls a clip, which on CUDA is a
few hundred kernel launches. Here every output pixel is one rectangle sum read from a summed-area table in four
lookups, so all the boxes of all the frames of a batch of clips come out of one gather, on any device.

The bins are adaptive pooling's own: output pixel i of a span of n input pixels resampled to m covers input pixels
floor(i n / m) to ceil((i + 1) n / m) - 1.

The table holds integers, fixed point: each value times 2^bits, rounded (`fixed_point`), one plane per channel. Its
sums are exact, where a float32 table would lose whole grey levels in a 360 x 480 frame's sums; int32 planes rather
than a float64 table, because building it and reading it are memory-bound: half the bytes, and single values rather
than rows of three to gather, make face detection 1.33x faster. Frames that are not shrunk are whole grey levels,
and frames shrunk by 2 into block means are quarters of them, so both are exact; frames shrunk bilinear keep their
fractions to within 1/64 of a grey level (5 fraction bits at 360 x 640), far below the one grey level of noise that
moves MTCNN's boxes (`bench/faces.py`): on the real clips no box moved by more than 0.003 pixels.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

_workspace = threading.local()  # each thread's table memory, reused from clip to clip
SHRINKS = ("area", "bilinear")  # how frames larger than the detection size are shrunk into a table
GATHER_COST = 6  # measured on CPU: a table lookup (one output pixel) costs about as much as pooling 6 input pixels


def bin_edges(start: torch.Tensor, length: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive pooling's bins over spans [start, start + length) of input pixels: (first, end) (..., bins) each."""
    i = torch.arange(bins, device=start.device)
    first = start[..., None] + (i * length[..., None]) // bins
    end = start[..., None] + ((i + 1) * length[..., None] + bins - 1) // bins
    return first, end


def _buffer(name: str, numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`numel` values of this thread's workspace `name` on `device`: a fresh table (66 MB for 16 frames of 360 x 480)
    costs more in page faults than its sums do (measured on CPU: 39 ms to allocate and zero, 20 ms to sum)."""
    held = getattr(_workspace, "buffers", {})
    _workspace.buffers = held
    key = (name, dtype, device)
    if key not in held or held[key].numel() < numel:
        held.pop(key, None)  # give the smaller one back first
        held[key] = torch.empty(numel, dtype=dtype, device=device)
    return held[key][:numel]


def fixed_point(h: int, w: int) -> tuple[torch.dtype, int]:
    """The table's integer type and fraction bits for h x w frames of values up to 255: int32 while its largest sum
    leaves at least 4 fraction bits (frames up to about 500k pixels; up to 8 bits), else int64 with 8."""
    spare = math.floor(math.log2((2**31 - 1) / (h * w * 255)))
    return (torch.int32, min(8, spare)) if spare >= 4 else (torch.int64, 8)


def block_sums(x: torch.Tensor, k: int) -> torch.Tensor:
    """The sums of the k x k blocks of integer planes x (C, k h, k w): (C, h, w), exact. k^2 strided adds, in int16
    while the sums fit it: for a 720 x 1280 frame 1 ms here, where PyTorch's pooling of a float copy takes 6 ms (and
    the antialiased resize 3-4 ms)."""
    out = x[:, 0::k, 0::k].to(torch.int16 if k * k * 255 < 2**15 else torch.int32)
    for i in range(k):
        for j in range(k):
            if i or j:
                out += x[:, i::k, j::k]
    return out


class AreaTable:
    """The summed-area table of T frames shrunk to a shorter side of at most `size`, ready to area-resample any of
    their rectangles. A thread's tables share its workspace: a table is valid until the next one that thread makes."""

    def __init__(self, frames: np.ndarray | torch.Tensor | Sequence[np.ndarray], size: int, device: torch.device,
                 shrink: str = "area"):
        """frames (T, H, W, C) uint8 or float (or T such frames (H, W, C) of one size), shrunk one at a time straight
        into the table, so no float copy of them at their decoded size is made; `scale` is the factor applied.
        `shrink` (SHRINKS): "bilinear", antialiased, what stores made before `DetectSettings.shrink` used; or "area":
        frames shrunk by a whole number k (720 to 360) become the means of their k x k blocks, the area resampling
        MTCNN reads its whole pyramid with, so a level of the shrunk frame is nearly that level of the frame itself,
        4x faster than bilinear; other factors stay bilinear, as pooling's uneven bins at 3/4 moved boxes further
        (worst IoU 0.90 against 0.92 of one grey level's noise, on a 640 x 480 RAVDESS clip)."""
        if shrink not in SHRINKS:
            raise ValueError(f"shrink {shrink!r} is not one of {', '.join(SHRINKS)}")
        T, (H, W, C) = len(frames), frames[0].shape
        self.scale = min(1.0, size / min(H, W))
        # the size F.interpolate gives; one plane per channel, as PyTorch gathers single values several times faster
        # than rows of C
        h, w = (math.floor(H * self.scale), math.floor(W * self.scale)) if self.scale < 1.0 else (H, W)
        dtype, self.bits = fixed_point(h, w)
        self.table = _buffer("table", C * T * (h + 1) * (w + 1), dtype, device).view(C, T, h + 1, w + 1)
        self.table[:, :, 0], self.table[:, :, :, 0] = 0, 0  # (C, T, h+1, w+1)
        inner = self.table[:, :, 1:, 1:]
        k = H // h
        by_blocks = shrink == "area" and k > 1 and (H, W) == (k * h, k * w)  # the means of k x k blocks
        exact = by_blocks and 2**self.bits % (k * k) == 0  # whole grey levels' means, in integers (720 to 360)
        for t, frame in enumerate(frames):
            x = torch.as_tensor(frame, device=device).permute(2, 0, 1)  # (C, H, W)
            summed = 1  # integer x: each value the sum of this many grey levels, which divides 2^bits
            if exact and not x.is_floating_point():
                x, summed = block_sums(x, k), k * k
            elif self.scale < 1.0:  # planar float first, in one copy: PyTorch resizes planes 1.7x faster
                planar = _buffer("frame", C * H * W, torch.float32, device).view(1, C, H, W).copy_(x)
                x = (F.avg_pool2d(planar, k) if by_blocks else
                     F.interpolate(planar, scale_factor=self.scale, mode="bilinear", antialias=True))[0]
            if x.is_floating_point():
                inner[:, t].copy_(x.mul(2.0**self.bits).round_())
            else:  # the means in fixed point, exact
                inner[:, t].copy_(x).mul_(2**self.bits // summed)
        for row in range(1, h):  # PyTorch's cumsum along a middle dimension is 2x slower than adding the rows
            inner[:, :, row] += inner[:, :, row - 1]
        inner.cumsum_(3)
        self.shape = (T, h, w, C)
        self._images: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def select(self, frames: list[int]) -> AreaTable:
        """The table of some of the frames (no recomputation)."""
        if frames == list(range(len(self))):
            return self
        out = object.__new__(AreaTable)
        out.table, out._images = self.table[:, frames], None if self._images is None else self._images[frames]
        out.shape, out.scale, out.bits = (len(frames), *self.shape[1:]), self.scale, self.bits
        return out

    def resized(self, size: tuple[int, int]) -> torch.Tensor:
        """Every whole image area-resampled to size (oh, ow): (T, C, oh, ow) float32.

        A lookup costs as much as pooling about GATHER_COST input pixels, so a level of more than 1/GATHER_COST of
        the image's pixels (the full pyramid's two finest) is pooled from the images instead."""
        _, h, w, _ = self.shape
        if size[0] * size[1] * GATHER_COST > h * w:
            return F.adaptive_avg_pool2d(self.images(), size)
        zero = torch.zeros((), dtype=torch.long, device=self.table.device)
        top, bottom = bin_edges(zero, torch.tensor(h, device=zero.device), size[0])  # (oh,) each
        left, right = bin_edges(zero, torch.tensor(w, device=zero.device), size[1])  # (ow,) each
        frames = torch.arange(self.shape[0], device=zero.device)[:, None, None]  # (T, 1, 1)
        return self._means(frames, top[None, :, None], bottom[None, :, None], left[None, None, :],
                           right[None, None, :])

    def images(self) -> torch.Tensor:
        """The images, (T, C, h, w) float32, read back from the table the first time the full pyramid's finest levels
        need them (valid, like the table, until this thread makes its next)."""
        if self._images is None:  # frame by frame, into this thread's workspace: no transient copy of the clip
            T, h, w, C = self.shape
            self._images = _buffer("images", T * C * h * w, torch.float32, self.table.device).view(T, C, h, w)
            for frame, t in zip(self._images, self.table.unbind(1)):  # (C, h, w), (C, h+1, w+1)
                values = t[:, 1:, 1:] - t[:, :-1, 1:] - t[:, 1:, :-1] + t[:, :-1, :-1]  # (C, h, w)
                torch.div(values, 2.0**self.bits, out=frame)
        return self._images

    def crops(self, top: torch.Tensor, bottom: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
              frames: torch.Tensor, size: int) -> torch.Tensor:
        """Rectangles rows [top, bottom) x columns [left, right) (N,) of images `frames` (N,), each area-resampled
        to size x size: (N, C, size, size) float32."""
        top, bottom = bin_edges(top, bottom - top, size)  # (N, size) each
        left, right = bin_edges(left, right - left, size)
        return self._means(frames[:, None, None], top[:, :, None], bottom[:, :, None], left[:, None, :],
                           right[:, None, :])

    def _means(self, frames, top, bottom, left, right) -> torch.Tensor:
        """Mean of each rectangle [top, bottom) x [left, right) of image `frames`, all broadcast to (N, H, W):
        (N, C, H, W) float32."""
        T, h, w, C = self.shape
        planes = self.table.view(C, -1)  # (C, T (h+1) (w+1))
        image = frames * ((h + 1) * (w + 1))
        lower, upper = image + bottom * (w + 1), image + top * (w + 1)
        shape = torch.broadcast_shapes(frames.shape, top.shape, left.shape)
        corners = torch.stack([(lower + right).expand(shape), (upper + right).expand(shape),
                               (lower + left).expand(shape), (upper + left).expand(shape)]).view(-1)  # (4 N H W)
        sums = []
        for plane in planes:
            at = plane.index_select(0, corners).view(4, *shape)  # (4, N, H, W)
            sums.append(at[0] - at[1] - at[2] + at[3])
        counts = ((bottom - top) * (right - left)).expand(shape)[:, None] << self.bits  # (N, 1, H, W)
        return torch.stack(sums, 1).float() / counts  # (N, C, H, W); exact sums below 2^24
