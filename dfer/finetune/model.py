"""EndToEnd: the encoders in front of the stage-2 heads, so one forward goes from cached media to logits.

    faces (B, T, 3, S, S) uint8 --SigLIP2--> video_tokens (B, T, N, D) -.
    waveform (B, S) + num_samples --FastConformer--> audio_tokens (B, Ta, Da), audio_length -+-> DferHeads -> logits

The encoders produce exactly what stage 1 cached (the heads were trained on that), so before the first step
the model scores clips as the stage-2 run did. Only the streams the heads use are built: an audio-only model
has no vision encoder and never reads a face. `load_end_to_end` rebuilds a fine-tuned run's model from its folder:
its heads (`dfer.runs.load.load_run`) behind the encoders saved beside them (RUN/vision, RUN/audio).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import nn

from dfer.encoders import rebuild_encoder
from dfer.encoders.base import ImageEncoder, WaveformEncoder
from dfer.extras import installed
from dfer.finetune.trainable import frozen_roots, lora_merged
from dfer.heads import DferHeads
from dfer.streams import read_by
from dfer.runs.files import save_weights
from dfer.runs.load import load_run

MEDIA_KEYS = ("faces", "waveform", "num_samples")


class EndToEnd(nn.Module):
    """forward(media batch) -> the heads' output ({"logits": (B, C), ...}).

    precision: "bf16" autocasts on CUDA (the loop's own bf16 autocast is switched off again for "fp32"); a CPU
    always computes in float32.
    """

    def __init__(self, heads: DferHeads, vision: ImageEncoder | None, audio: WaveformEncoder | None,
                 precision: str = "bf16"):
        super().__init__()
        self.heads, self.vision, self.audio = heads, vision, audio
        self.precision = precision
        self.frozen = [name for name in frozen_roots(self) if not name.startswith("heads")]  # stay in eval mode

    def train(self, mode: bool = True) -> EndToEnd:
        """The heads train in train mode; the encoders always run as they did for extraction (eval mode: running
        BatchNorm statistics, no dropout), so the features under the heads are the ones the cached tokens were.
        In train mode a random-init FastConformer's features move by up to 3.5 (mean |token| 0.8) from its cached
        tokens, and a fold-1 RAVDESS speech fine-tune fell from 39 % UAR to chance in one epoch."""
        super().train(mode)
        for encoder in (self.vision, self.audio):
            if encoder is not None:
                encoder.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = batch["frame_time"].device
        cast = (torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.precision == "bf16")
                if device.type == "cuda" else nullcontext())
        with cast:
            return self.heads(self.encode(batch))

    def encode(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A media batch -> the stage-2 batch the heads read (tokens where the media were)."""
        out = {key: value for key, value in batch.items() if key not in MEDIA_KEYS}
        B, T = batch["frame_time"].shape
        if self.vision is not None:
            faces = batch["faces"]  # (B, T, 3, S, S) uint8
            rows = batch["has_video"].bool().nonzero().flatten()  # clips with video (RAVDESS has audio-only ones)
            if len(rows) == B:
                tokens = self.vision(faces.flatten(0, 1)).unflatten(0, (B, T))  # (B, T, N, D)
            elif len(rows):
                tokens = self.vision(faces[rows].flatten(0, 1)).unflatten(0, (len(rows), T))  # (b, T, N, D)
                tokens = tokens.new_zeros(B, *tokens.shape[1:]).index_copy(0, rows, tokens)  # (B, T, N, D)
            else:
                tokens = faces.new_zeros(B, T, self.vision.num_tokens, self.vision.dim, dtype=torch.float32)
            out["video_tokens"] = tokens
        if self.audio is not None:
            num_samples = batch["num_samples"].long()  # (B,)
            longest = max(int(num_samples.max()), 1)
            tokens, length = self.audio(batch["waveform"][:, :longest], num_samples)  # (B, Ta, Da), (B,)
            out["audio_tokens"] = tokens
            out["audio_length"] = torch.where(batch["has_audio"].bool(), length, 0).long()  # stage 1 wrote 0 there
        return out

    def save_encoders(self, run: Path) -> None:
        """RUN/vision and RUN/audio: plain encoder folders (LoRA merged) that `load_vision` / `load_audio` and
        `dfer extract --vision/--audio` read. Each is written beside and swapped in, so a crash keeps the old one."""
        for name, encoder in (("vision", self.vision), ("audio", self.audio)):
            if encoder is None:
                continue
            final, partial, old = run / name, run / f"{name}.partial", run / f"{name}.old"
            for stale in (partial, old):
                _remove(stale)
            with lora_merged(encoder), quiet_transformers():
                encoder.save(partial)
            if final.exists():
                final.rename(old)
            partial.rename(final)
            _remove(old)

    def save(self, run: Path, kind: str) -> None:
        """What the training loop keeps: heads as RUN/{kind}.safetensors, and for "best" the encoders too."""
        save_weights(self.heads, run / f"{kind}.safetensors")
        if kind == "best":
            self.save_encoders(run)


def load_end_to_end(run: Path, device: str = "cpu") -> tuple[EndToEnd, dict]:
    """The best heads of RUN2 behind the encoders saved with them, in eval mode."""
    run = Path(run)
    heads, config = load_run(run, "best", device)
    if "finetune" not in config:
        raise ValueError(f"{run}: not a fine-tuned run (its config has no finetune section)")
    streams = read_by(config["heads"])
    recorded = config["fingerprint"]
    with quiet_transformers():
        vision = rebuild_encoder("vision", recorded["vision"], device, run / "vision") if "video" in streams else None
    audio = rebuild_encoder("audio", recorded["audio"], device, run / "audio") if "audio" in streams else None
    model = EndToEnd(heads, vision, audio, config["finetune"]["precision"])
    return model.to(device).eval(), config


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers tqdm bars inside (it draws one per save and load, through the training progress bar); nothing
    to quieten without transformers (the lite encoders)."""
    if not installed("transformers"):
        yield
        return
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _remove(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
