"""The `acoustic` audio family: pitch, voicing, loudness and spectral shape every 10 ms, measured with librosa, as
tokens. No weights and no extra: a prosody stream the core install can ship beside GE2E.

Why it exists: GE2E is trained to make a voice's identity easy to read and everything else hard; what a speaker does
with their pitch and loudness, relative to their own habit, is what emotion changes most, and per-speaker statistics
(`docs/adapt.md`) take the habit out. openSMILE's eGeMAPS (the `egemaps` family) measures the same things and more,
but its licence is for research only and it is an optional extra, so a bundled model cannot read it.

Token j holds 30 values, all from frames centred at j x 10 ms (librosa's centred frames), so a clip of S samples gives
F = 1 + S // 160 tokens, ge2e's count and alignment:
- `f0`: pYIN's fundamental frequency (Mauch and Dixon, ICASSP 2014) in semitones above 27.5 Hz, searched over
  60-600 Hz on 64 ms frames, linearly carried across unvoiced frames (and held before the first and after the last
  voiced one) so that a contour's mean and spread are the voice's, not its voicing ratio; 0 in a clip with no
  voiced frame. pYIN keeps librosa's default grid (a tenth of a semitone, 100 thresholds): a coarser one is four
  times faster but, measured on RAVDESS clips, calls up to a fifth of the frames' voicing differently.
- `voicing`: pYIN's probability that the frame is voiced;
- `loudness`: the frame's RMS in dB (floor -100 dB), over 32 ms windows;
- `f0_delta`, `loudness_delta`: their slopes (librosa's delta, 9 frames);
- `centroid`, `bandwidth`, `rolloff` (log Hz), `flatness` (log), `zcr`, `flux` (librosa's onset strength): the
  spectrum's shape, which tension and effort move;
- `contrast_1..7`: spectral contrast per octave band (Jiang et al. 2002), the peak-to-valley depth, a cue to
  harmonicity and breathiness;
- `mfcc_1..12`: the mel cepstrum without its 0th (loudness) coefficient.
The spectral values read the spectrum floored 80 dB below full scale (`SPECTRUM_FLOOR` says why), so an empty band
reads the same in every recording. Units differ per value; a consumer standardises each dimension (the heads and the probe do, per speaker or with the
training set's statistics).

librosa is imported on first use, not with this module (`librosa_kernels` says how).
"""

from __future__ import annotations

import numpy as np
import torch

from dfer.encoders.base import Weightless, WaveformEncoder, clip_by_clip
from dfer.encoders.librosa_kernels import librosa_module

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
N_FFT = 512  # 32 ms: the spectral values' window
PITCH_FRAME = 1024  # 64 ms: two periods of pYIN's lowest pitch
FMIN, FMAX = 60.0, 600.0  # Hz: speech, low male to high child
F0_REFERENCE = 27.5  # Hz: semitones counted from A0, as eGeMAPS does
FLOOR = 1e-5  # amplitude: -100 dB
# The spectrum's floor for its shape: 80 dB below a full-scale sine's peak bin (a Hann window of N_FFT gives N_FFT / 4).
# Bands a codec left empty (CREMA-D's Flash video stops near 5.5 kHz) would otherwise be shaped by whatever dust is in
# them: without a floor, 16-bit quantisation moved the top band's contrast by two standard deviations, and at 90 dB
# down the lowest band's by a quarter. Above it, speech; below, nothing a recording keeps the same.
SPECTRUM_FLOOR = N_FFT / 4 * 10 ** (-80 / 20)
BANDS = 6  # spectral contrast's octave bands (7 values with the one above them)
MFCCS = 12
FEATURES = ("f0", "voicing", "loudness", "f0_delta", "loudness_delta", "centroid", "bandwidth", "rolloff",
            "flatness", "zcr", "flux", *(f"contrast_{k}" for k in range(1, BANDS + 2)),
            *(f"mfcc_{k}" for k in range(1, MFCCS + 1)))
VERSION = 2  # of the measures above (1 had no spectrum floor): a store records it, so changed measures cannot pass


def carried_pitch(f0: np.ndarray) -> np.ndarray:
    """pYIN's f0 (F,) in Hz, NaN where unvoiced -> semitones above 27.5 Hz (F,), linearly carried across unvoiced
    frames and held at the ends; zeros when no frame is voiced."""
    voiced = np.flatnonzero(np.isfinite(f0))
    if len(voiced) == 0:
        return np.zeros(len(f0), np.float32)
    semitones = 12 * np.log2(f0[voiced] / F0_REFERENCE)
    return np.interp(np.arange(len(f0)), voiced, semitones).astype(np.float32)


def measures(wave: np.ndarray) -> np.ndarray:
    """One clip's samples (S,) float 16 kHz -> its tokens (1 + S // 160, 30) float32, in `FEATURES`' order."""
    librosa = librosa_module()
    frames = 1 + len(wave) // HOP
    wave = np.pad(np.asarray(wave, np.float32), (0, max(PITCH_FRAME - len(wave), 0)))  # pYIN needs one frame
    f0, _, voicing = librosa.pyin(wave, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE, frame_length=PITCH_FRAME,
                                  hop_length=HOP)
    raw = np.abs(librosa.stft(wave, n_fft=N_FFT, hop_length=HOP))  # (257, F')
    spectrum = np.maximum(raw, SPECTRUM_FLOOR)  # (257, F') the shape's spectrum, floored
    pitch = carried_pitch(f0)
    loudness = librosa.amplitude_to_db(librosa.feature.rms(S=raw, frame_length=N_FFT)[0], amin=FLOOR, top_db=None)
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum ** 2, sr=SAMPLE_RATE))  # (128, F')
    rows = [
        pitch, voicing, loudness,
        librosa.feature.delta(pitch, mode="nearest"), librosa.feature.delta(loudness, mode="nearest"),
        np.log(librosa.feature.spectral_centroid(S=spectrum, sr=SAMPLE_RATE)[0] + 1),
        np.log(librosa.feature.spectral_bandwidth(S=spectrum, sr=SAMPLE_RATE)[0] + 1),
        np.log(librosa.feature.spectral_rolloff(S=spectrum, sr=SAMPLE_RATE)[0] + 1),
        np.log(librosa.feature.spectral_flatness(S=spectrum)[0]),
        librosa.feature.zero_crossing_rate(wave, frame_length=N_FFT, hop_length=HOP)[0],
        librosa.onset.onset_strength(S=mel_db, sr=SAMPLE_RATE),
        *librosa.feature.spectral_contrast(S=spectrum, sr=SAMPLE_RATE, n_bands=BANDS, fmin=100.0),
        *librosa.feature.mfcc(S=mel_db, n_mfcc=MFCCS + 1)[1:],
    ]
    return np.stack([np.asarray(row, np.float32)[:frames] for row in rows], axis=1)  # (F, 30)


class AcousticEncoder(Weightless, WaveformEncoder):
    """(B, S) 16 kHz waveform -> (B, F, 30) acoustic measures every 10 ms and their lengths (B,)."""

    sample_rate = SAMPLE_RATE
    frame_seconds = HOP / SAMPLE_RATE
    dim = len(FEATURES)

    def __init__(self):
        super().__init__()
        self.spec, self.revision = "acoustic", f"librosa-{librosa_module().__version__},v{VERSION}"
        self.features = list(FEATURES)

    def forward(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S), length (B,) -> tokens (B, F, 30) float32, zero past each clip's F_b, lengths (B,).

        On the CPU, clip by clip over its valid samples only, so padding never reaches a clip's tokens."""
        return clip_by_clip(waveform, length, lambda wave: torch.from_numpy(measures(wave)))

    def family_fields(self) -> dict:
        return {"features": self.features}


def load_acoustic(meta: bool = False, device: str | torch.device = "cpu") -> AcousticEncoder:
    """The encoder; it has no parameters, so `meta` and `device` change nothing but where its tokens are returned."""
    return AcousticEncoder().eval()
