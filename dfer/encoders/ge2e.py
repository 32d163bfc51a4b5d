"""The `ge2e` audio encoder: resemblyzer 0.1.4's pretrained GE2E speaker encoder, one 256-d token every 10 ms.

GE2E (Wan et al., "Generalized end-to-end loss for speaker verification", ICASSP 2018) is a 3-layer LSTM (256 units)
over 40 mel bands, trained on thousands of speakers. It is the one pretrained speech encoder this project can measure
itself on without a model hub: the resemblyzer 0.1.4 wheel ships its weights (`resemblyzer/pretrained.pt`,
Apache-2.0), and dfer vendors that file unchanged (`dfer/encoders/weights/ge2e/`, read with `weights_only=True`, its
SHA-256 checked). resemblyzer itself is only the tests' reference: its install needs webrtcvad, a C extension.

Front end, exactly resemblyzer's `audio.wav_to_mel_spectrogram`: librosa's power mel spectrogram (not log) of the
16 kHz waveform, 25 ms window (n_fft 400), 10 ms hop, 40 bands, centred frames. Frame j is centred on j x 10 ms.
Two steps of resemblyzer's `preprocess_wav` are left out on purpose: the VAD trimming of long silences, which would
cut the timeline the video frames are aligned to, and the volume normalisation, which would remove loudness, an
emotion cue the power mel carries.

Tokens: the output h_t of LSTM layer N (spec `ge2e,layer=N`, 1..3; default 2) at every mel frame, (B, F, 256),
F = 1 + samples // 160; only layers 1..N are built. The LSTMs run forward only, so a valid frame's token never
depends on the padding after it. Why layer 2: GE2E is trained to make its final state speaker-discriminative and
emotion-invariant, and its middle layer keeps more of the prosody. A logistic regression on each clip's mean and std
(5-fold CV by actor, RAVDESS speech actors 01-18) reaches UAR 54.9 on layer 2, 48.8 on layer 3 and 41.1 on layer 1
(recipes/ravdess_speech/RESULTS.md). With N = 3 the speaker projection (linear, ReLU, L2 norm over 1.6 s windows) is
kept too, so `utterance_embedding` reproduces resemblyzer's own embedding. The mel front end has no weights and runs
without gradients; the LSTMs stay differentiable for stage 3.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dfer.encoders.base import Parts, WaveformEncoder
from dfer.encoders.librosa_kernels import librosa_module
from dfer.encoders.presets import local_revision
from dfer.vendored import read_vendored

SAVE_FORMAT = "dfer.ge2e/1"
SAMPLE_RATE = 16000
MEL_BANDS = 40
N_FFT = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
HIDDEN = 256
LAYERS = 3
DEFAULT_LAYER = 2  # the token layer (see the module docstring for why)
SHIPPED_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"  # resemblyzer 0.1.4 pretrained.pt
WEIGHTS = Path(__file__).parent / "weights" / "ge2e" / "pretrained.pt"


def power_mel(wave: np.ndarray) -> np.ndarray:
    """wave (S,) float 16 kHz -> (F, 40) float32 power mel frames, F = 1 + S // 160: resemblyzer's front end."""
    mel = librosa_module().feature.melspectrogram(y=np.asarray(wave, np.float32), sr=SAMPLE_RATE, n_fft=N_FFT,
                                                  hop_length=HOP, n_mels=MEL_BANDS)  # (40, F)
    return mel.astype(np.float32).T


class Ge2eEncoder(WaveformEncoder):
    """(B, S) 16 kHz waveform -> (B, F, 256) states of LSTM layer `layer` every 10 ms, and their lengths."""

    sample_rate = SAMPLE_RATE
    dim = HIDDEN
    frame_seconds = HOP / SAMPLE_RATE

    def __init__(self, layer: int = DEFAULT_LAYER, spec: str | None = None, revision: str | None = None):
        super().__init__()
        if not 1 <= layer <= LAYERS:
            raise ValueError(f"ge2e has LSTM layers 1..{LAYERS}, not layer={layer}")
        # One-layer LSTMs, not one multi-layer nn.LSTM: the same computation (resemblyzer's has no dropout), but each
        # layer is a block stage 3 can freeze, decay and checkpoint on its own, and the layers above N are not built.
        self.layers = nn.ModuleList(nn.LSTM(MEL_BANDS if i == 0 else HIDDEN, HIDDEN, batch_first=True)
                                    for i in range(layer))
        if layer == LAYERS:
            self.linear = nn.Linear(HIDDEN, HIDDEN)  # the speaker-embedding projection (utterance_embedding only)
        self.layer = layer
        self.spec, self.revision = spec or f"ge2e,layer={layer}", revision

    def mel(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S), length (B,) -> mel (B, F, 40) zero-padded past each clip's frames, frames (B,) long.

        librosa on the CPU, clip by clip over its valid samples: the exact front end the weights were trained
        with (a torch STFT agrees only to rounding), and it costs little beside the LSTM.
        """
        waves = waveform.detach().float().cpu().numpy()
        mels = [power_mel(wave[: max(int(n), 1)]) for wave, n in zip(waves, length.tolist())]  # F_b x (F, 40)
        frames = torch.tensor([len(m) for m in mels])
        out = torch.zeros(len(mels), int(frames.max()), MEL_BANDS)  # (B, F, 40)
        for row, m in zip(out, mels):
            row[: len(m)] = torch.from_numpy(m)
        return out.to(waveform.device), frames.to(waveform.device)

    def forward(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel, frames = self.mel(waveform, length)  # (B, F, 40), (B,)
        return self.states(mel.to(self.layers[0].weight_ih_l0.dtype)), frames  # (B, F, 256)

    def states(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, F, 40) -> layer N's state after every frame (B, F, 256)."""
        for layer in self.layers:
            mel, _ = layer(mel)
        return mel

    def utterance_embedding(self, wave: np.ndarray, partial_slices: list[slice]) -> torch.Tensor:
        """GE2E's utterance embedding over the given mel-frame windows (resemblyzer's `embed_utterance` cuts them).

        Each window's final state -> linear -> ReLU -> L2 norm; the windows' mean, L2-normed. (256,) Needs the whole
        network (layer 3).
        """
        if self.layer != LAYERS:
            raise ValueError(f"the utterance embedding needs all {LAYERS} LSTM layers, this encoder has {self.layer}")
        mel = torch.from_numpy(power_mel(wave))  # (F, 40)
        windows = torch.stack([mel[s] for s in partial_slices]).to(self.linear.weight)  # (P, 160, 40)
        final = self.states(windows)[:, -1]  # (P, 256) each window's final state
        partial = torch.relu(self.linear(final))  # (P, 256)
        partial = partial / partial.norm(dim=1, keepdim=True)
        mean = partial.mean(0)
        return mean / mean.norm()

    def family_fields(self) -> dict:
        return {"layer": self.layer}

    def parts(self) -> Parts:
        """No stem: the first LSTM reads the mel frames; `linear` makes no token."""
        return Parts(self, [], list(self.layers), [])

    def save(self, path: str | Path) -> None:
        """`config.json` + `model.safetensors`: a folder the builder reads back (e.g. after stage 3)."""
        from safetensors.torch import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"format": SAVE_FORMAT, "layer": self.layer}, indent=2) + "\n")
        save_model(self, str(path / "model.safetensors"))


def load_ge2e(layer: int | None = None, folder: str | Path | None = None, device: str | torch.device = "cpu",
              meta: bool = False) -> Ge2eEncoder:
    """Layers 1..`layer` (default 2) of resemblyzer's weights (vendored), or a folder `save` wrote (its own layer)."""
    if folder is not None:
        from safetensors.torch import load_model

        config = json.loads((Path(folder) / "config.json").read_text())
        if config.get("format") != SAVE_FORMAT:
            raise ValueError(f"{folder} is not a ge2e encoder folder (config.json lacks format {SAVE_FORMAT!r})")
        encoder = Ge2eEncoder(config["layer"], str(folder), local_revision(folder))
        if not meta:
            load_model(encoder, str(Path(folder) / "model.safetensors"), strict=True)
        return encoder.to(device).eval()
    layer = DEFAULT_LAYER if layer is None else layer
    if meta:
        with torch.device("meta"):
            return Ge2eEncoder(layer)
    data = read_vendored(WEIGHTS, SHIPPED_SHA256, "resemblyzer 0.1.4's pretrained.pt", "ge2e-weights")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["model_state"]
    encoder = Ge2eEncoder(layer, revision=f"sha256={SHIPPED_SHA256}")
    # The checkpoint also holds GE2E's similarity scale and bias (its training loss only), and the layers above N.
    wanted = encoder.state_dict().keys()
    encoder.load_state_dict({k: v for k, v in ((_layer_key(k), v) for k, v in state.items()) if k in wanted},
                            strict=True)
    return encoder.to(device).eval()


def _layer_key(key: str) -> str:
    """resemblyzer's `lstm.weight_ih_l2` -> our `layers.2.weight_ih_l0` (three one-layer LSTMs)."""
    if not key.startswith("lstm."):
        return key
    name, layer = key.removeprefix("lstm.").rsplit("_l", 1)
    return f"layers.{layer}.{name}_l0"
