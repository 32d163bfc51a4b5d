"""transformers speech encoders as dfer audio encoders: wav2vec2, HuBERT, WavLM and Whisper's encoder, one token
per 20 ms from one chosen layer.

Spec `hf:<hub id or folder>[,layer=N]`. `layer` counts transformer blocks: the tokens are what the encoder hands on
when it is cut after block N (N = 0: the input of the first block; N = L: the whole encoder). Only the first N blocks
are built and loaded, so the blocks above cost nothing, and every weight kept shapes the tokens (stage 3 fine-tunes
all it holds). A pre-LN encoder (Whisper; wav2vec2-family `do_stable_layer_norm`, the large checkpoints) ends with a
LayerNorm after its last block, and it stays after block N: a pre-LN residual stream is unnormalised, and that norm
is what the model learnt to scale its output with. So the tokens are `hidden_states[N]` of the full model for the
post-LN (base) checkpoints and `layer_norm(hidden_states[N])` for the pre-LN ones; at N = L both are the encoder's
`last_hidden_state`.

Default layer (`default_layer`): two thirds of the way up for wav2vec2 / HuBERT / WavLM (8 of 12, 16 of 24). Layer-wise
probing (SUPERB's learnt layer weights for emotion and speaker tasks; Pasad et al. 2021 on wav2vec2) finds
paralinguistic information peaking in the middle-to-upper blocks, while the last blocks turn back towards the
pretraining target (or towards characters once fine-tuned for ASR). Whisper: the last block, the one its decoder
reads through cross-attention and the one Whisper-based emotion and audio-tagging probes use.

Inputs are prepared as each model's feature extractor does, in torch, so the whole path runs batched on the
device and stays differentiable:
- wav2vec2 family: per-utterance zero mean, unit variance over the valid samples when the extractor normalises;
  an attention mask only when its extractor returns one (without a saved extractor: only for a layer-normed conv
  front end, `feat_extract_norm == "layer"`, HF's documented rule). Without a mask (base checkpoints, group-normed
  front end) padding changes the valid tokens a little: those models were trained that way.
- Whisper: the log-mel spectrogram of WhisperFeatureExtractor, on the clip zero-padded to the encoder's fixed
  window (30 s, 3000 mel frames, for every released checkpoint); of its 1500 frames of 20 ms only those starting
  inside the clip are kept. Every clip is encoded alone in its own window, so padding never changes a token, but a
  clip costs 30 s of compute whatever its length, and a longer clip is an error.

LayerDrop is switched off at load: a block it skips in a training step gets no gradient, which DistributedDataParallel
takes for an error. SpecAugment-style masking of wav2vec2-family features stays as the checkpoint sets it; it only
acts in train mode (stage 3), as in HF's fine-tuning recipes, and needs batches of at least `mask_time_length`
tokens (10, 200 ms).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from dfer.encoders.base import Parts, WaveformEncoder
from dfer.encoders.hf_common import (
    AUDIO_MODELS,
    MARKER,
    load_weights,
    pretrained_revision,
    read_json,
    write_marker,
)

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, SequenceFeatureExtractor

_NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
_LOG_MEL_RANGE = 8.0  # Whisper keeps the 80 dB below each window's loudest mel bin


class HfAudioEncoder(WaveformEncoder):
    """transformers speech encoder: (B, S) waveform -> (B, Ta, D) tokens of one layer and their lengths.

    `parts()`: the transformer blocks in order and the norm after the last one (none for post-LN models); everything
    else is the stem. `model` is the transformers model, for `save_pretrained` and gradient checkpointing.
    """

    def __init__(self, model: PreTrainedModel, extractor: SequenceFeatureExtractor, layer: int, spec: str,
                 revision: str | None):
        super().__init__()
        self.model = model
        self.extractor = extractor
        self.layer = layer
        self.spec = spec
        self.revision = revision
        config = model.config
        self.model_type: str = config.model_type
        self.sample_rate: int = extractor.sampling_rate
        self.dim: int = config.hidden_size
        if self.model_type == "whisper":
            # conv2 strides 2 over 10 ms mel hops: 320 samples = 20 ms; the window is 2 mel frames per position.
            self.token_samples: int = 2 * extractor.hop_length
            self.window_samples: int = config.max_source_positions * self.token_samples
            self.min_samples: int = 1
            mel_filters = torch.from_numpy(extractor.mel_filters).float()  # (n_fft/2 + 1, M)
            self.register_buffer("mel_filters", mel_filters, persistent=False)
        else:
            self.token_samples = math.prod(config.conv_stride)  # 320 samples = 20 ms for every released model
            self.min_samples = _receptive_field(config.conv_kernel, config.conv_stride)  # 400 samples = 25 ms
            self.use_mask: bool = bool(extractor.return_attention_mask)
            self.normalize: bool = bool(extractor.do_normalize)
        self.frame_seconds: float = self.token_samples / self.sample_rate

    def forward(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """waveform (B, S) float at `sample_rate`, length (B,) valid samples -> tokens (B, Ta, D), lengths (B,).

        A clip shorter than one token's receptive field (25 ms) is padded with silence to it, so every clip has at
        least one token. Ta is the longest token length in the batch.
        """
        waveform, length = waveform.float(), length.to(waveform.device)
        if waveform.shape[1] < self.min_samples:
            waveform = nn.functional.pad(waveform, (0, self.min_samples - waveform.shape[1]))
        length = length.clamp(min=self.min_samples)
        valid = torch.arange(waveform.shape[1], device=waveform.device) < length[:, None]  # (B, S)
        if self.model_type == "whisper":
            hidden, token_length = self._whisper(waveform * valid, length)
        else:
            hidden, token_length = self._wav2vec2(waveform, valid, length)
        return hidden[:, : int(token_length.max())], token_length  # (B, Ta, D), (B,)

    def _wav2vec2(self, waveform: torch.Tensor, valid: torch.Tensor,
                  length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.normalize:  # statistics of the valid samples only, as the extractor computes them before padding
            count = length[:, None].float()  # (B, 1)
            mean = (waveform * valid).sum(1, keepdim=True) / count
            var = ((waveform - mean) * valid).square().sum(1, keepdim=True) / count
            waveform = (waveform - mean) / torch.sqrt(var + _NORM_EPS)
        waveform = (waveform * valid).to(self.model.dtype)  # (B, S), zeros beyond each length as HF pads
        mask = valid.long() if self.use_mask else None
        hidden = self.model(input_values=waveform, attention_mask=mask).last_hidden_state  # (B, T', D)
        return hidden, self.model._get_feat_extract_output_lengths(length).long()

    def _whisper(self, waveform: torch.Tensor, length: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if waveform.shape[1] > self.window_samples:
            if int(length.max()) > self.window_samples:
                raise ValueError(f"Whisper's encoder takes at most {self.window_samples / self.sample_rate:g} s "
                                 f"of audio, got a clip of {int(length.max()) / self.sample_rate:g} s")
            waveform = waveform[:, : self.window_samples]
        waveform = nn.functional.pad(waveform, (0, self.window_samples - waveform.shape[1]))  # (B, W)
        mel = self._log_mel(waveform).to(self.model.dtype)  # (B, M, 2P)
        hidden = self.model(input_features=mel).last_hidden_state  # (B, P, D)
        token_length = (length + self.token_samples - 1) // self.token_samples  # tokens starting inside the clip
        return hidden, token_length.long()

    def _log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """WhisperFeatureExtractor's log-mel spectrogram, batched and differentiable: (B, W) -> (B, M, W / hop)."""
        n_fft, hop = self.extractor.n_fft, self.extractor.hop_length
        window = torch.hann_window(n_fft, device=waveform.device)
        stft = torch.stft(waveform, n_fft, hop, window=window, return_complex=True)  # (B, n_fft/2 + 1, W/hop + 1)
        power = stft[..., :-1].abs().square()  # the extractor drops the last frame
        mel = (self.mel_filters.T @ power).clamp(min=1e-10).log10()  # (B, M, W/hop)
        mel = torch.maximum(mel, mel.amax(dim=(1, 2), keepdim=True) - _LOG_MEL_RANGE)
        return (mel + 4.0) / 4.0

    def parts(self) -> Parts:
        """The transformer blocks, first to last (only the `layer` blocks the tokens come from are built), and the
        norm applied after the last one: pre-LN encoders only (a post-LN encoder's norm is in its stem)."""
        stack = self.model if self.model_type == "whisper" else self.model.encoder
        pre_ln = self.model_type == "whisper" or self.model.config.do_stable_layer_norm
        return Parts(self.model, [], list(stack.layers), [stack.layer_norm] if pre_ln else [])

    def family_fields(self) -> dict:
        return {"family": "hf", "layer": self.layer}

    def save(self, path: str | Path) -> None:
        """Write a Hugging Face model folder (model, feature extractor, `dfer_encoder.json` with the layer) that
        `load_hf_audio(path)` reads back as this encoder, e.g. after fine-tuning."""
        self.model.save_pretrained(str(path))
        self.extractor.save_pretrained(str(path))
        write_marker(path, "audio", layer=self.layer)


def default_layer(model_type: str, num_layers: int) -> int:
    """The block whose output a model's tokens come from unless a spec says `layer=N` (see the module docstring)."""
    return num_layers if model_type == "whisper" else round(2 * num_layers / 3)


def load_hf_audio(source: str, layer: int | None = None, device: str | torch.device = "cpu", meta: bool = False,
                  spec: str | None = None) -> HfAudioEncoder:
    """Build the audio encoder of a transformers checkpoint (hub id or local folder), cut after block `layer`.

    `layer=None` takes the layer a folder written by `save` recorded, else `default_layer`. `spec` defaults to
    `hf:<source>,layer=<layer>`. Returned in eval mode with float32 weights; `meta=True` builds on the meta device
    from the configuration alone (for parameter counts).
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    model_type = config.model_type
    if model_type not in AUDIO_MODELS:
        raise ValueError(f"{source} is a {model_type!r} model; hf audio encoders: {', '.join(AUDIO_MODELS)}")
    if getattr(config, "add_adapter", False):
        raise ValueError(f"{source} has a wav2vec2 adapter, which changes the token rate; not supported")
    total = config.num_hidden_layers
    if layer is None:
        layer = (read_json(source, MARKER) or {}).get("layer", default_layer(model_type, total))
    if not 0 <= layer <= total:
        raise ValueError(f"layer must be in 0..{total} for {source}, got {layer}")
    config.num_hidden_layers = layer  # the blocks above are neither built nor loaded
    config.update({"encoder_layerdrop" if model_type == "whisper" else "layerdrop": 0.0})
    extractor = _feature_extractor(source, config)
    spec = spec or f"hf:{source},layer={layer}"
    revision = pretrained_revision(source)

    model_class = _model_class(model_type)
    if meta:
        with torch.device("meta"):
            model = model_class(config)
        # .to: wav2vec2's `masked_spec_embed` is made with torch.Tensor(), which ignores the default device
        return HfAudioEncoder(model, extractor, layer, spec, revision).to("meta")
    if model_type == "whisper" and "WhisperEncoder" not in (config.architectures or []):
        model = _whisper_encoder(source, config)
    else:
        model = load_weights(model_class, source, config)
    return HfAudioEncoder(model.to(device), extractor, layer, spec, revision).eval()


def _model_class(model_type: str) -> type[PreTrainedModel]:
    if model_type == "whisper":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder
    import transformers

    return getattr(transformers, AUDIO_MODELS[model_type])


def _whisper_encoder(source: str, config: PretrainedConfig) -> PreTrainedModel:
    """The encoder of a whole Whisper checkpoint. Loaded through WhisperModel, whose weight names the checkpoint
    uses, with no decoder blocks, so the decoder's weights are never allocated."""
    from transformers import WhisperModel

    config.decoder_layers = 0
    return load_weights(WhisperModel, source, config).get_encoder()


def _feature_extractor(source: str, config: PretrainedConfig) -> SequenceFeatureExtractor:
    """The checkpoint's saved feature extractor, else the one its model type is trained with."""
    from transformers import Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    saved = read_json(source, "preprocessor_config.json")
    if config.model_type == "whisper":
        return WhisperFeatureExtractor.from_dict(saved) if saved else WhisperFeatureExtractor(
            feature_size=config.num_mel_bins)
    if saved:
        return Wav2Vec2FeatureExtractor.from_dict(saved)
    # Normalising is harmless for group-normed front ends (their first norm rescales anyway) and needed for the
    # layer-normed ones, which alone were trained with padding masks.
    return Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=config.feat_extract_norm == "layer")


def _receptive_field(kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Samples one output frame of a stack of unpadded 1-d convolutions sees."""
    field = 1
    for kernel, stride in reversed(list(zip(kernels, strides, strict=True))):
        field = (field - 1) * stride + kernel
    return field
