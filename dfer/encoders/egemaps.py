"""The `egemaps` audio family: openSMILE's eGeMAPS v02 low-level descriptors, 25 prosodic and spectral values every
10 ms, as tokens. No weights: a measured prosody stream beside a learned one (GE2E).

eGeMAPS (Eyben et al., "The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for voice research and affective
computing", IEEE TAC 2016) is the standard hand-made acoustic set for emotion: pitch, jitter, shimmer, loudness,
harmonics-to-noise ratio, formants, spectral slopes and MFCCs. The tokens are exactly what the `opensmile` package
gives (`Smile(FeatureSet.eGeMAPSv02, FeatureLevel.LowLevelDescriptors).process_signal`), unscaled: Hz, dB, semitones
and ratios side by side, so a consumer standardises them per dimension (the linear probe does).

Licence: openSMILE is audEERING's research licence (its wheel's LICENSE): free for non-commercial research,
teaching and personal use; commercial use needs a licence from audEERING.

Alignment. openSMILE cuts frames every 10 ms, frame k's window starting at k x 10 ms, of two lengths, and smooths
every descriptor over 3 frames (centred, so the centre stays):
- 20 ms Hamming windows (16 descriptors: loudness, spectral slopes, alpha ratio, Hammarberg index, spectral flux,
  MFCC 1-4, formant frequencies and bandwidths), centred at k x 10 ms + 10 ms;
- 60 ms Gaussian windows (the 9 in `LONG_WINDOW`: F0, jitter, shimmer, HNR, harmonic differences and formant
  amplitudes), centred at k x 10 ms + 30 ms, 20 ms later.
Token j takes each descriptor from the frame whose window is centred at (j + 1) x 10 ms: frame j of the 20 ms ones
and frame j - 2 of the 60 ms ones, so every window of token j covers [j, j + 1) x 10 ms of the clip and all 25 are
measured at one instant, 5 ms after its middle (ge2e's and mel's frames are 5 ms before it). The first two tokens
repeat the first 60 ms frame, as no 60 ms window inside the clip is centred earlier; the last two 60 ms frames, centred
past the last 20 ms one, are dropped. A clip of S >= 960 samples gives openSMILE's own count, (S - 800) // 160 + 1
tokens; a shorter one (for which openSMILE gives no frame) is padded with silence to 60 ms, 2 tokens.

opensmile is imported on first use, not with this module.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from dfer.encoders.base import Weightless, WaveformEncoder, clip_by_clip

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
MIN_SAMPLES = 960  # 60 ms: openSMILE's first frame of the long windows needs this much signal
FEATURE_SET = "eGeMAPSv02"
# The descriptors measured on 60 ms windows (openSMILE's `gemapsv01b_frame60` framer: pitch, jitter and shimmer,
# harmonics), centred 20 ms after the 20 ms windows of the same frame.
LONG_WINDOW = ("F0semitoneFrom27.5Hz_sma3nz", "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz",
               "logRelF0-H1-H2_sma3nz", "logRelF0-H1-A3_sma3nz", "F1amplitudeLogRelF0_sma3nz",
               "F2amplitudeLogRelF0_sma3nz", "F3amplitudeLogRelF0_sma3nz")
LONG_LAG = 2  # frames: (60 ms - 20 ms) / 2 / 10 ms


@cache
def smile():
    """openSMILE's eGeMAPS v02 low-level descriptor extractor (one per process; cheap to build, ~0.5 s to import)."""
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet[FEATURE_SET],
                           feature_level=opensmile.FeatureLevel.LowLevelDescriptors)


class EgemapsEncoder(Weightless, WaveformEncoder):
    """(B, S) 16 kHz waveform -> (B, F, 25) eGeMAPS v02 descriptors every 10 ms and their lengths (B,)."""

    sample_rate = SAMPLE_RATE
    frame_seconds = HOP / SAMPLE_RATE

    def __init__(self):
        super().__init__()
        import opensmile

        self.spec, self.revision = "egemaps", f"opensmile-{opensmile.__version__}"
        self.features: list[str] = list(smile().feature_names)  # the 25 descriptors, in token order
        self.dim: int = len(self.features)
        self.long = torch.tensor([name in LONG_WINDOW for name in self.features])  # (25,) bool

    def forward(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S), length (B,) -> tokens (B, F, 25) float32, zero past each clip's F_b, lengths (B,).

        openSMILE on the CPU, clip by clip over its valid samples only, so padding never reaches a clip's tokens."""
        return clip_by_clip(waveform, length, self.descriptors)

    def descriptors(self, wave: np.ndarray) -> torch.Tensor:
        """One clip's samples (S,) -> its tokens (F, 25), each descriptor from the frame centred at (j + 1) x 10 ms
        (the module docstring)."""
        wave = np.pad(wave.astype(np.float32), (0, max(MIN_SAMPLES - len(wave), 0)))  # silence up to 60 ms
        frames = torch.tensor(smile().process_signal(wave, SAMPLE_RATE).to_numpy(np.float32))  # (F, 25)
        lagged = (torch.arange(len(frames)) - LONG_LAG).clamp(min=0)  # (F,) the 60 ms frame of each token
        return torch.where(self.long, frames[lagged], frames)  # (F, 25)

    def family_fields(self) -> dict:
        return {"feature_set": FEATURE_SET, "features": self.features}


def load_egemaps(meta: bool = False, device: str | torch.device = "cpu") -> EgemapsEncoder:
    """The encoder; it has no parameters, so `meta` and `device` change nothing but where its tokens are returned."""
    return EgemapsEncoder().eval()
