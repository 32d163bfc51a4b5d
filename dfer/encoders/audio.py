"""The audio encoder: NeMo's mel front end plus a FastConformer encoder, 16 kHz waveform -> one token per 80 ms.

From a pretrained ASR model (`nvidia/stt_en_fastconformer_hybrid_large_pc`, EncDecHybridRNNTCTCBPEModel)
only `.preprocessor` and `.encoder` are kept; the RNNT/CTC decoders and tokenizer are dropped. Stage 1 runs
it frozen; stage 3 fine-tunes the encoder, so `forward` stays differentiable (the mel front end has no
weights and NeMo runs it without gradients).

Whatever the source, the modules are rebuilt from NeMo `_target_` configs with two overrides:
- `dither = 0` (and no narrow-band augmentation) in the preprocessor: NeMo only dithers in training mode,
  but frozen features must not depend on a caller remembering `.eval()`;
- `sync_max_audio_length = False` in the encoder: otherwise NeMo all-reduces the longest input across ranks
  on every forward, which deadlocks under torchrun when ranks extract different numbers of batches.

NeMo takes ~10 s to import, so it is imported inside functions only.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import nn

from dfer.encoders.base import Parts, WaveformEncoder, Weightless
from dfer.encoders.librosa_kernels import librosa_module
from dfer.encoders.presets import (
    AUDIO_ARCHS,
    FASTCONFORMER_PREPROCESSOR,
    hub_commit,
    local_revision,
    random_arch,
)

# NeMo's telemetry (nv_one_logger) warns on every import that it is disabled; say nothing unless it fails.
logging.getLogger("nv_one_logger").setLevel(logging.ERROR)
# NeMo logs INFO to stdout (restoring a .nemo says a lot), where a command's results go (`--json` must be JSON alone):
# all of its logging to stderr, read when NeMo is first imported, which is only ever after this module.
os.environ.setdefault("NEMO_REDIRECT_LOGS_TO_STDERR", "1")

SAVE_FORMAT = "dfer.audio_encoder/1"
_NEMO_MODULES = "nemo.collections.asr.modules."  # the only `_target_`s a saved config may name


class AudioEncoder(WaveformEncoder):
    """NeMo preprocessor + ConformerEncoder: (B, S) waveform -> (B, Ta, D) tokens and their lengths."""

    def __init__(self, preprocessor: nn.Module, encoder: nn.Module, config: dict, spec: str, revision: str | None):
        super().__init__()
        self.preprocessor = preprocessor
        self.encoder = encoder
        self.config = config  # {"preprocessor": {...}, "encoder": {...}}: NeMo `_target_` configs, rebuild both
        self.spec = spec
        self.revision = revision
        self.sample_rate: int = int(config["preprocessor"]["sample_rate"])
        feat_out = config["encoder"].get("feat_out", -1)
        self.dim: int = feat_out if feat_out > 0 else config["encoder"]["d_model"]
        # One token covers hop x subsampling samples: 160 x 8 = 1280 samples = 80 ms for FastConformer.
        self.token_samples: int = preprocessor.featurizer.hop_length * encoder.subsampling_factor
        self.frame_seconds: float = self.token_samples / self.sample_rate

    def forward(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S) float at `sample_rate`, length (B,) valid samples -> tokens (B, Ta, D), lengths (B,).

        Clips shorter than one token (80 ms) are padded with silence to one token (`padded_mel`). Valid tokens do not depend on how much padding follows them (per-feature statistics and attention
        only see valid frames). Ta is the longest token length in the batch.
        """
        mel, mel_length = padded_mel(self.preprocessor, waveform, length, self.token_samples)  # (B, F, Tm), (B,)
        tokens, token_length = self.encoder(audio_signal=mel, length=mel_length)  # (B, D, Ta'), (B,)
        tokens = tokens.transpose(1, 2)[:, : int(token_length.max())]  # (B, Ta, D)
        return tokens, token_length

    def parts(self) -> Parts:
        conformer = self.encoder
        final = [conformer.out_proj] if getattr(conformer, "out_proj", None) is not None else []
        return Parts(conformer, [conformer.pre_encode, conformer.pos_enc], list(conformer.layers), final)

    def lora_targets(self) -> list[str]:
        """The attention projections and feed-forward linears of each block; not `linear_pos`, which only rotates
        relative positions (the convolution module has no nn.Linear)."""
        return ["linear_q", "linear_k", "linear_v", "linear_out", "linear1", "linear2"]

    def save(self, path: str | Path) -> None:
        """Write `config.json` (the NeMo configs) and `model.safetensors`: a folder `load_audio(path)` reads."""
        from safetensors.torch import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"format": SAVE_FORMAT, **self.config}, indent=2) + "\n")
        save_model(self, str(path / "model.safetensors"))


def padded_mel(preprocessor: nn.Module, waveform: torch.Tensor, length: torch.Tensor,
               min_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NeMo's mel of waveform (B, S) with silence past each length and every clip at least `min_samples` long.

    Below one mel frame NeMo yields zero frames, and at one frame its per-feature normalisation divides by zero
    (an error on GPU), so short clips are padded with silence. -> mel (B, F, Tm), mel_length (B,).
    """
    waveform, length = waveform.float(), length.to(waveform.device)
    valid = torch.arange(waveform.shape[1], device=waveform.device) < length[:, None]  # (B, S)
    waveform = waveform * valid  # silence beyond each length, so the padding below is silence too
    if waveform.shape[1] < min_samples:
        waveform = nn.functional.pad(waveform, (0, min_samples - waveform.shape[1]))
    return preprocessor(input_signal=waveform, length=length.clamp(min=min_samples))


class MelEncoder(Weightless, WaveformEncoder):
    """The `mel` family, the encoder-free ablation: the FastConformer's own NeMo log-mel front end as the tokens.

    (B, S) waveform -> (B, Tm, 80) log-mel frames every 10 ms (25 ms windows), normalised per feature over each
    clip's valid frames exactly as the FastConformer sees them. No weights: nothing for stage 3 to train.
    """

    def __init__(self, preprocessor: nn.Module, spec: str = "mel"):
        super().__init__()
        self.preprocessor, self.spec = preprocessor, spec
        self.revision = "nemo-fastconformer-preprocessor"
        self.sample_rate: int = int(FASTCONFORMER_PREPROCESSOR["sample_rate"])
        self.dim: int = int(FASTCONFORMER_PREPROCESSOR["features"])
        self.hop: int = preprocessor.featurizer.hop_length
        self.frame_seconds: float = self.hop / self.sample_rate

    def forward(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S), length (B,) -> tokens (B, Tm, 80), lengths (B,). Clips under 80 ms are padded to 80 ms
        of silence, as the FastConformer's are."""
        mel, mel_length = padded_mel(self.preprocessor, waveform, length, 8 * self.hop)  # (B, 80, Tm), (B,)
        return mel.transpose(1, 2)[:, : int(mel_length.max())], mel_length  # (B, Tm, 80)


def nemo_serialization() -> type:
    """NeMo's builder of modules from `_target_` configs. NeMo imports librosa, which must come first, alone among
    this machine's processes (`librosa_kernels` says why)."""
    librosa_module()
    from nemo.core.classes.common import Serialization

    return Serialization


def load_mel(meta: bool = False, device: str | torch.device = "cpu") -> MelEncoder:
    """NeMo's AudioToMelSpectrogramPreprocessor with the FastConformer family's settings, dither off."""
    Serialization = nemo_serialization()
    config = {**FASTCONFORMER_PREPROCESSOR, "dither": 0.0, "nb_augmentation_prob": 0.0}
    with _parameters_on_meta() if meta else nullcontext():
        module = MelEncoder(Serialization.from_config_dict(config))
    return module if meta else module.to(device).eval()


def load_audio(spec: str, seed: int = 0, device: str | torch.device = "cpu", meta: bool = False) -> AudioEncoder:
    """Build the audio encoder a spec names: `random:<arch>`, a folder from `AudioEncoder.save`, a `.nemo`
    file or a hub id of a NeMo ASR model. Returned in eval mode.

    `meta=True` builds on the meta device from the configs alone (for parameter counts); for a `.nemo` file
    or hub id NeMo still needs the checkpoint locally to read its config.
    """
    arch = random_arch(spec, AUDIO_ARCHS, "audio")
    if arch is not None:
        config = {"preprocessor": FASTCONFORMER_PREPROCESSOR, "encoder": AUDIO_ARCHS[arch]}
        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
            torch.manual_seed(seed)
            encoder = _build(config, spec, f"seed={seed}", meta)  # on the CPU: same weights on any device
    elif Path(spec).is_dir():
        encoder = _load_folder(Path(spec), spec, meta)
    else:
        encoder = _load_nemo(spec, meta)
    return encoder if meta else encoder.to(device)


def _build(config: dict, spec: str, revision: str | None, meta: bool) -> AudioEncoder:
    """Instantiate both NeMo modules from their `_target_` configs, with the extraction overrides."""
    Serialization = nemo_serialization()
    config = copy.deepcopy(config)
    config["preprocessor"].update(dither=0.0, nb_augmentation_prob=0.0)
    config["encoder"]["sync_max_audio_length"] = False
    for part in ("preprocessor", "encoder"):
        target = config[part].get("_target_", "")
        if not target.startswith(_NEMO_MODULES):
            raise ValueError(f"{part} `_target_` must be a class in {_NEMO_MODULES}*, got {target!r}")
    with _parameters_on_meta() if meta else nullcontext():
        preprocessor = Serialization.from_config_dict(config["preprocessor"])
        encoder = Serialization.from_config_dict(config["encoder"])
    module = AudioEncoder(preprocessor, encoder, config, spec, revision)
    return module.to("meta") if meta else module.eval()


def _load_folder(path: Path, spec: str, meta: bool) -> AudioEncoder:
    """A folder written by `AudioEncoder.save`."""
    from safetensors.torch import load_model

    config = json.loads((path / "config.json").read_text())
    if config.pop("format", None) != SAVE_FORMAT:
        raise ValueError(f"{path} is not an audio encoder folder (config.json lacks format {SAVE_FORMAT!r})")
    module = _build(config, spec, local_revision(path), meta)
    if not meta:
        load_model(module, str(path / "model.safetensors"), strict=True)
    return module


def _load_nemo(spec: str, meta: bool) -> AudioEncoder:
    """A `.nemo` file or a hub id: restore the ASR model, keep its preprocessor and encoder."""
    librosa_module()  # NeMo imports librosa: first, under its lock
    from nemo.collections.asr.models import ASRModel
    from omegaconf import OmegaConf

    local = Path(spec).is_file()
    restore = ASRModel.restore_from if local else ASRModel.from_pretrained
    restored = restore(spec, map_location="cpu", return_config=meta)
    model_config = restored if meta else restored.cfg
    config = {part: OmegaConf.to_container(model_config[part], resolve=True) for part in ("preprocessor", "encoder")}
    revision = local_revision(spec) if local else hub_commit(ASRModel.from_pretrained(spec, return_model_file=True))
    module = _build(config, spec, revision, meta)
    if not meta:
        module.preprocessor.load_state_dict(restored.preprocessor.state_dict())
        module.encoder.load_state_dict(restored.encoder.state_dict())
    return module


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Put every parameter registered inside on the meta device, leaving other tensors real.

    NeMo's ConvSubsampling computes its output size with tensor ops and `.item()` while it is built, which a
    `torch.device("meta")` context forbids. Moving each parameter to meta as it is registered (what
    accelerate's `init_empty_weights` does) keeps the build working and never holds more than one layer.
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register
