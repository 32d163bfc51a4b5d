"""Training-time augmentation of cached clips: face crops (with their landmarks) and waveforms.

Every random choice is made once per clip and applied to all its T frames, so a clip stays a coherent video
(a crop that jumped between frames would look like motion). Faces use torchvision.transforms.v2 on the uint8
crops; the landmarks move with the crop and the flip, so the ROI prior of the heads keeps pointing at the eyes
and mouth. Audio gets a gain, a small time shift and, half the time, noise at a random SNR.

All randomness comes from torch's global generator, which `fit` reseeds before each batch is read from (seed, epoch,
the batch's index in the epoch): runs repeat, whichever rank trains a batch (with `workers`, the DataLoader seeds
each worker per epoch instead, so runs repeat but a clip's draw depends on its worker).
Only training clips are augmented; validation and test clips are read as cached.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

# MTCNN's 5 points: left eye, right eye, nose, mouth left, mouth right (in image order). A horizontal flip moves
# the left eye to the right, so the pairs swap to keep each index on the same side of the image.
FLIP_ORDER = [1, 0, 2, 4, 3]


@dataclass(kw_only=True)
class AugmentConfig:
    # Face crops are already tight squares around the track (25% margin): mild crops only, or the mouth leaves.
    crop_scale: tuple[float, float] = (0.8, 1.0)  # area fraction of the crop kept
    crop_ratio: tuple[float, float] = (0.9, 1.1)  # aspect ratio of the kept area (resized back to square)
    flip: float = 0.5  # probability of a horizontal flip: expressions are close to mirror-symmetric
    jitter: float = 0.8  # probability of colour jitter
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.02  # small: skin hue carries little expression and large shifts look unlike any camera
    gain_db: float = 6.0  # audio gain uniform in +-gain_db
    shift_seconds: float = 0.08  # audio time shift up to one FastConformer token: audio stays aligned to the frames
    noise: float = 0.5  # probability of added Gaussian noise
    snr_db: tuple[float, float] = (15.0, 40.0)  # noise level relative to the clip's RMS

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Augment:
    """Callable pieces, one per modality; `sample_rate` converts the shift to samples."""

    def __init__(self, cfg: AugmentConfig, sample_rate: int = 16000):
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.jitter = v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)

    def faces(self, faces: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """faces (T, 3, S, S) uint8, landmarks (T, 5, 2) crop pixels (NaN = none) -> the same, augmented."""
        cfg, size = self.cfg, faces.shape[-1]
        top, left, height, width = v2.RandomResizedCrop.get_params(faces, list(cfg.crop_scale), list(cfg.crop_ratio))
        faces = TF.resized_crop(faces, top, left, height, width, [size, size], antialias=True)  # (T, 3, S, S)
        scale = torch.tensor([size / width, size / height])
        landmarks = (landmarks - torch.tensor([left, top], dtype=landmarks.dtype)) * scale  # (T, 5, 2)
        if torch.rand(()) < cfg.flip:
            faces = TF.horizontal_flip(faces)
            landmarks = landmarks[:, FLIP_ORDER]
            landmarks[..., 0] = size - landmarks[..., 0]
        if torch.rand(()) < cfg.jitter:
            faces = self.jitter(faces)  # one set of factors for all T frames
        return faces, landmarks

    def waveform(self, wave: torch.Tensor, num_samples: int) -> torch.Tensor:
        """wave (S_max,) float, valid in [:num_samples] -> (S_max,), zeros past num_samples stay zeros."""
        cfg = self.cfg
        valid = wave[:num_samples] * 10 ** (float(torch.empty(()).uniform_(-cfg.gain_db, cfg.gain_db)) / 20)
        limit = int(cfg.shift_seconds * self.sample_rate)
        shift = int(torch.randint(-limit, limit + 1, ())) if limit and num_samples > limit else 0
        if shift:  # move the signal, filling the gap with silence (no wrap-around click)
            valid = torch.roll(valid, shift)
            if shift > 0:
                valid[:shift] = 0
            else:
                valid[shift:] = 0
        if num_samples and torch.rand(()) < cfg.noise:
            snr_db = float(torch.empty(()).uniform_(*cfg.snr_db))
            rms = valid.pow(2).mean().sqrt().clamp(min=1e-4)  # silent clip: noise at -80 dBFS, not zero
            valid = valid + torch.randn_like(valid) * rms / math.sqrt(10 ** (snr_db / 10))
        out = wave.clone()
        out[:num_samples] = valid
        return out
