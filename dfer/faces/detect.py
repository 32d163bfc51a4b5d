"""Batched face detection with MTCNN: every face in every frame, with its 5 landmarks.

MTCNN's networks and weights (facenet-pytorch's, vendored: `dfer.faces.mtcnn`) ship inside dfer, so detection works
offline. Every face is returned, because
choosing which face to follow is the tracker's job (`dfer.faces.track`), not the detector's. All T frames of a clip go
through in one call: they share a size, and MTCNN batches its image pyramid across them.

MTCNN is three networks: PNet slides a 12-pixel window over an image pyramid and proposes boxes, RNet (24-pixel
crops) rejects most, ONet (48-pixel crops) scores the rest and places the final box and landmarks. Frames are shrunk
to a shorter side of `detect_size` (360) first: by a whole number (720-pixel frames, the size larger videos are
decoded to) as the means of blocks, the area resampling MTCNN reads its pyramid with, else bilinear, antialiased
(`DetectSettings.shrink`: stores made before it shrank every frame bilinear, 4x slower at 720). Two methods
(`DetectSettings.method`, in the store's fingerprint):

- `"full"` (every store that records no `face_detect`): the whole pyramid, for faces down to `min_face` (20) pixels, 5.6 % of
  the shorter side. The levels for small faces are the large images, so they are most of PNet's cost and most of the
  proposals RNet and ONet then read; emotion datasets and webcams are close-ups, whose faces fill a quarter of the
  frame.
- `"large-first"` (the default): the same pyramid without the levels for faces under 1/6 of the shorter side; the
  frames where that finds no face are searched again without the levels for faces under 1/8, and only the frames
  still without one with the full method (`large_face`, the passes). The levels kept are the full method's own
  (same scales, same crops, same thresholds), so a large face comes out with the full method's box and landmarks,
  or close to it: on the 8 real sample clips 110 of 128 frames' boxes are the old full method's (bilinear) exactly,
  two CREMA-D frames' within IoU 0.94 and the 720-pixel RAVDESS clip's 16, shrunk by area, within 0.985
  (`bench/faces.py`; one grey level of noise moves the full method's own boxes further). PNet proposes faces down
  to about half its window, so the first pass finds faces down to about 1/10 of the shorter side (37 of 360
  pixels), the second down to about 1/15 (24 pixels; `tests/test_face_detect.py`). A smaller face is still found
  when no larger one is in its frame; beside a larger face it is not (so `--face-track speaker` weighs only the
  faces the passes find there). Why two passes: the level the second adds is the largest image a pass reads, and
  its proposals are most of what RNet and ONet then score, so close-ups, whose faces the first pass finds, take a
  sixth less time, and a face of 1/10 to 1/15 of the frame is found by the second pass on the frames left.

Both run the networks on channels-last tensors and read every pyramid level and every RNet and ONet crop from one
summed-area table of the clip (`dfer.faces.area`) instead of pooling each box in its own call: the full method gives
facenet-pytorch's `detect_face` boxes, and large-first is 5x faster than it (`bench/faces.py`). Frames are shrunk one
at a time into that table, so no float copy of a clip at its decoded size is made. Boxes and landmarks come back in
the pixels of the frames given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchvision.ops import batched_nms

from dfer.faces.area import SHRINKS, AreaTable
from dfer.faces.boxes import batched_nms_min, bbreg, in_batches, pad, pnet_boxes, rerec
from dfer.faces.mtcnn import FACTOR, THRESHOLDS, load_mtcnn
from dfer.faces.track import Detections

DETECT_METHODS = ("large-first", "full")
CUDA_BATCH_FRAMES = 128  # frames one detection call takes on CUDA (8 clips of 16): 0.7 GB of tables at 360 x 640
# pixels PNet reads a call: 6 frames of the full pyramid's largest level at 360 x 640, whose activations for all 16
# frames of a clip at once took 116 MB more at their peak (a grey 8K upload to `dfer serve` searches all of them)
PNET_PIXELS = 2**19


@dataclass(frozen=True)
class DetectSettings:
    """How faces are searched for; recorded in a store's fingerprint (`face_detect`), as it changes the boxes."""

    method: str = "large-first"  # or "full": the whole pyramid on every frame (what stores that record no method used)
    detect_size: int = 360  # frames are shrunk to this shorter side for detection
    min_face: int = 20  # smallest face searched for, in detect_size pixels (5.6 % of the shorter side)
    # large-first: its passes look for faces of at least 1/6, then 1/8, of the shorter side (one number: one pass)
    large_face: float | tuple[float, ...] = (6, 8)
    shrink: str = "area"  # how frames are shrunk to detect_size (`dfer.faces.area.SHRINKS`)

    def __post_init__(self):
        if self.method not in DETECT_METHODS:
            raise ValueError(f"face detection method {self.method!r} is not one of {', '.join(DETECT_METHODS)}")
        if self.shrink not in SHRINKS:
            raise ValueError(f"face detection shrink {self.shrink!r} is not one of {', '.join(SHRINKS)}")
        passes = tuple(self.large_face) if isinstance(self.large_face, (tuple, list)) else (self.large_face,)
        object.__setattr__(self, "large_face", passes)

    def record(self) -> dict:
        """The fingerprint's `face_detect` value (one pass as the number stores of a single pass recorded; bilinear
        shrinking left out, as every record before `shrink` meant it), so a store's own record reads back unchanged
        and it resumes."""
        fields = asdict(self)
        if self.method == "full":  # the coarse fields play no part
            fields.pop("large_face")
        else:
            fields["large_face"] = self.large_face[0] if len(self.large_face) == 1 else list(self.large_face)
        if self.shrink == "bilinear":
            fields.pop("shrink")
        return fields

    @classmethod
    def from_record(cls, record: dict | None) -> DetectSettings:
        """Settings from a fingerprint's `face_detect`; None (a store made before it was recorded): the full method.
        A record without `shrink` is from before it was recorded: its frames were shrunk bilinear."""
        return LEGACY_DETECT if record is None else cls(**{"shrink": "bilinear", **record})


# what every store made before `face_detect` was recorded used
LEGACY_DETECT = DetectSettings(method="full", shrink="bilinear")


class FaceDetector:
    """MTCNN on a device, returning only detections at least `min_prob` confident, in full-frame pixels.

    batch_frames: `detect_clips` detects clips of one frame size together, up to this many frames a call (default:
    128 on CUDA, where one call for a batch of clips keeps the GPU busy; on CPU one clip a call, as batching gains
    nothing there and the summed-area tables of 128 frames would take 800 MB of memory).
    """

    def __init__(self, device: str = "cpu", min_prob: float = 0.9, settings: DetectSettings | None = None,
                 batch_frames: int | None = None):
        self.min_prob, self.settings = min_prob, settings or DetectSettings()
        self.device = torch.device(device)
        self.batch_frames = (CUDA_BATCH_FRAMES if self.device.type == "cuda" else 0) if batch_frames is None \
            else batch_frames
        self.nets = _Nets(self.device)
        self.last_fallback_frames = 0  # frames the last call searched again with the full method

    @property
    def detect_size(self) -> int:
        return self.settings.detect_size

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[Detections]:
        """frames (T, H, W, 3) uint8 RGB (or T such frames (H, W, 3) of one size) -> T Detections in frame pixels."""
        s = self.settings
        area = AreaTable(frames, s.detect_size, self.device, s.shrink)  # shorter side detect_size at most
        scale = area.scale
        with torch.no_grad():
            if s.method == "full":
                self.last_fallback_frames = 0
                found = self._full(area)
            else:
                found = self._large_first(area)
        out = []
        for b, q in found:
            keep = b[:, 4] >= self.min_prob  # (n,)
            order = np.argsort(-_area(b[keep]), kind="stable")  # largest first, as MTCNN.detect lists them
            out.append(Detections(
                (b[keep, :4] / scale)[order].astype(np.float32),  # (n, 4)
                b[keep, 4][order].astype(np.float32),  # (n,)
                (q[keep] / scale)[order].astype(np.float32),  # (n, 5, 2)
            ))
        return out

    def detect_clips(self, clips: list[np.ndarray]) -> list[list[Detections]]:
        """Each clip's (T, H, W, 3) detections, neighbouring clips of one frame size in one call, up to
        `batch_frames` frames. Frames are passed by reference: a batch is never copied into one array."""
        groups: list[list[int]] = []
        for i, clip in enumerate(clips):
            last = groups[-1] if groups else []
            if (last and clips[last[0]].shape[1:] == clip.shape[1:]
                    and sum(len(clips[j]) for j in last) + len(clip) <= self.batch_frames):
                last.append(i)
            else:
                groups.append([i])
        out: list[list[Detections]] = [[] for _ in clips]
        for group in groups:
            found = iter(self([frame for i in group for frame in clips[i]]))
            for i in group:
                out[i] = [next(found) for _ in range(len(clips[i]))]
        return out

    def _full(self, area: AreaTable) -> list[tuple[np.ndarray, np.ndarray]]:
        """MTCNN's three stages over the whole pyramid, as facenet-pytorch's `detect_face` runs them:
        T images (h, w, 3) -> T (boxes (n, 5), points (n, 5, 2))."""
        scales = _grid(self.settings.min_face, area.shape[1:3], self.nets.factor)
        return _refine(area, *_proposals(area, scales, self.nets), self.nets)

    def _large_first(self, area: AreaTable) -> list[tuple[np.ndarray, np.ndarray]]:
        """Pass after pass, the full method's pyramid without its levels for faces under 1/large_face of the shorter
        side, each on the frames where the stages before found no face; last, the whole pyramid (the full method) on
        the frames still without one."""
        s, m = self.settings, self.nets
        grid = _grid(s.min_face, area.shape[1:3], m.factor)
        side = min(area.shape[1:3])  # pixels
        # each pass's levels: those whose 12-pixel window is a face of at least 1/large_face of the shorter side
        passes = [[x for x in grid if 12 / x >= side / large_face] for large_face in s.large_face]
        found: list = [None] * len(area)
        missed = list(range(len(area)))
        self.last_fallback_frames = 0
        for stage, scales in enumerate([*passes, grid]):
            if not missed:
                break
            if stage == len(passes):  # no large face there: search it as before, for smaller ones
                self.last_fallback_frames = len(missed)
            frames = area.select(missed)
            for t, result in zip(missed, _refine(frames, *_proposals(frames, scales, m), m)):
                found[t] = result
            missed = [t for t in missed if not (found[t][0][:, 4] >= self.min_prob).any()]
        return found


class _Nets:
    """MTCNN's three networks (channels-last), its stage thresholds and pyramid factor."""

    def __init__(self, device: torch.device):
        self.thresholds, self.factor = THRESHOLDS, FACTOR
        self.pnet, self.rnet, self.onet = (_ChannelsLast(n) for n in load_mtcnn(device))


def _grid(min_face: float, hw: tuple[int, int], factor: float = 0.709) -> list[float]:
    """MTCNN's pyramid for faces down to `min_face` pixels in an h x w image: the scales, largest first."""
    scales, scale, side = [], 12.0 / min_face, min(hw) * 12.0 / min_face
    while side >= 12:
        scales.append(scale)
        scale, side = scale * factor, side * factor
    return scales


def _proposals(area: AreaTable, scales: list[float], m: _Nets) -> tuple[torch.Tensor, torch.Tensor]:
    """MTCNN's first two stages (PNet over the pyramid `scales`, RNet on its boxes) as facenet-pytorch runs them:
    T images (h, w, 3) -> boxes (N, 5) x1, y1, x2, y2, score in image pixels (squared, for ONet), image index (N,)."""
    h, w = area.shape[1:3]
    boxes, image_inds = [], []
    for scale in scales:
        x = (area.resized((int(h * scale + 1), int(w * scale + 1))) - 127.5) * 0.0078125  # (T, 3, h', w')
        chunks = x.split(max(1, PNET_PIXELS // (x.shape[2] * x.shape[3])))  # one call's numbers, to float rounding
        reg, probs = (torch.cat(outputs) for outputs in zip(*(m.pnet(chunk) for chunk in chunks)))
        b, i = pnet_boxes(reg, probs[:, 1], scale, m.thresholds[0])
        pick = batched_nms(b[:, :4], b[:, 4], i, 0.5)
        boxes.append(b[pick]), image_inds.append(i[pick])
    if not boxes:
        return torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)
    boxes, image_inds = torch.cat(boxes), torch.cat(image_inds)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * bw, boxes[:, 1] + boxes[:, 6] * bh,
                         boxes[:, 2] + boxes[:, 7] * bw, boxes[:, 3] + boxes[:, 8] * bh, boxes[:, 4]], dim=1)
    boxes, image_inds = _inside(rerec(boxes), image_inds, w, h)
    if not len(boxes):
        return boxes, image_inds
    out = in_batches(_crops(area, boxes, image_inds, 24), m.rnet)
    score = out[1][:, 1]
    ok = score > m.thresholds[1]
    boxes = torch.cat([boxes[ok, :4], score[ok, None]], dim=1)
    image_inds, reg = image_inds[ok], out[0][ok]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    return rerec(bbreg(boxes[pick], reg[pick])), image_inds[pick]


def _refine(area: AreaTable, boxes: torch.Tensor, image_inds: torch.Tensor,
            m: _Nets) -> list[tuple[np.ndarray, np.ndarray]]:
    """MTCNN's third stage (ONet) on boxes (N, 5) of T images (h, w, 3): T (boxes (n, 5), points (n, 5, 2))."""
    T, h, w = area.shape[:3]
    boxes, image_inds = _inside(boxes, image_inds, w, h)
    if not len(boxes):
        return [_as_arrays(None, None) for _ in range(T)]
    out = in_batches(_crops(area, boxes, image_inds, 48), m.onet)
    reg, points, score = out[0], out[1], out[2][:, 1]  # (N, 4), (N, 10), (N,)
    ok = score > m.thresholds[2]
    boxes = torch.cat([boxes[ok, :4], score[ok, None]], dim=1)
    image_inds, reg, points = image_inds[ok], reg[ok], points[ok]
    bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1  # (n,)
    points = torch.stack([bw[:, None] * points[:, :5] + boxes[:, :1] - 1,
                          bh[:, None] * points[:, 5:] + boxes[:, 1:2] - 1], dim=2)  # (n, 5, 2)
    boxes = bbreg(boxes, reg)
    pick = batched_nms_min(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds, points = boxes[pick].cpu().numpy(), image_inds[pick].cpu().numpy(), points[pick].cpu().numpy()
    return [_as_arrays(boxes[image_inds == t], points[image_inds == t]) for t in range(T)]


def _crops(area: AreaTable, boxes: torch.Tensor, image_inds: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, size, size) normalised crops of boxes (N, >=4), cut as facenet-pytorch cuts them: clipped to the image
    (`pad`: 1-based, inclusive), area-resampled."""
    h, w = area.shape[1:3]
    y, ey, x, ex = (torch.from_numpy(v).long().to(boxes.device) for v in pad(boxes, w, h))  # (N,) each
    return (area.crops(y - 1, ey, x - 1, ex, image_inds, size) - 127.5) * 0.0078125


def _inside(boxes: torch.Tensor, image_inds: torch.Tensor, w: int, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The boxes that overlap the w x h image (facenet-pytorch skips the others when it cuts crops)."""
    y, ey, x, ex = pad(boxes, w, h)
    ok = torch.from_numpy((ey > y - 1) & (ex > x - 1)).to(boxes.device)
    return boxes[ok], image_inds[ok]


def _as_arrays(boxes, points) -> tuple[np.ndarray, np.ndarray]:
    """One image's MTCNN output as (n, 5) and (n, 5, 2) float arrays (empty when it found nothing)."""
    if boxes is None or len(boxes) == 0:
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
    return np.asarray(boxes, np.float32).reshape(-1, 5), np.asarray(points, np.float32).reshape(-1, 5, 2)


class _ChannelsLast(torch.nn.Module):
    """One of MTCNN's networks fed channels-last tensors: the same arithmetic, but PyTorch's CPU max-pooling (much of
    their time in NCHW) runs several times faster, and each network about 2x."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        return self.net(x.contiguous(memory_format=torch.channels_last))


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (n,)
