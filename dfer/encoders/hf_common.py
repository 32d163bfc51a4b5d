"""What the `hf:` encoder family shares: the transformers model types it takes, reading files of a model folder or
hub id, loading weights strictly, and the marker a saved folder keeps.

An `hf:` encoder is a transformers backbone used as it was published: its own classes, its own configuration and
the normalisation of its own preprocessor config. `hf_audio` and `hf_vision` build the encoders; this module holds
only what both need, plus `hf_folder_kind`, which tells the builder which of the two a source is.

`dfer_encoder.json` is written beside `config.json` by `save`: {"family": "hf", "kind": "audio" | "vision", ...}
(audio adds its "layer"), so a fine-tuned folder is read back as the encoder it was saved from.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dfer.encoders.presets import hub_commit, local_revision

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

# config.json `model_type` -> the transformers class that holds the encoder. A Whisper checkpoint is an
# encoder-decoder: `hf_audio` keeps its `WhisperEncoder` only.
AUDIO_MODELS: dict[str, str] = {
    "wav2vec2": "Wav2Vec2Model",
    "hubert": "HubertModel",
    "wavlm": "WavLMModel",
    "whisper": "WhisperEncoder",
}
# "clip" is a full CLIP checkpoint (text tower too), "clip_vision_model" a saved vision tower.
VISION_MODELS: dict[str, str] = {
    "clip": "CLIPVisionModel",
    "clip_vision_model": "CLIPVisionModel",
    "dinov2": "Dinov2Model",
    "dinov2_with_registers": "Dinov2WithRegistersModel",
    "vit": "ViTModel",
}

MARKER = "dfer_encoder.json"


def read_json(source: str | Path, filename: str) -> dict | None:
    """A JSON file of a local folder or a hub repository (downloaded into the HF cache), None if it has none."""
    if Path(source).is_dir():
        path = Path(source) / filename
        return json.loads(path.read_text()) if path.is_file() else None
    from transformers.utils import cached_file

    resolved = cached_file(str(source), filename, _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(resolved).read_text()) if resolved else None


def hf_folder_kind(source: str | Path) -> str | None:
    """"audio" or "vision" for a model folder (or hub id) this family can load, None for anything else.

    A folder `save` wrote says so in its marker; otherwise config.json's `model_type` decides. A hub id's
    config.json is downloaded; a file (a `.nemo` checkpoint, say) is no model folder.
    """
    if Path(source).is_file():
        return None
    marker = read_json(source, MARKER)
    if marker is not None and marker.get("family") == "hf":
        return marker["kind"]
    config = read_json(source, "config.json") or {}
    model_type = config.get("model_type")
    if model_type in AUDIO_MODELS:
        return "audio"
    if model_type in VISION_MODELS:
        return "vision"
    return None


def pretrained_revision(source: str) -> str | None:
    """Local folder: path, size and mtime of its files; hub id: the commit of the cached config (None if unknown)."""
    if Path(source).exists():
        return local_revision(source)
    from transformers.utils import cached_file

    resolved = cached_file(source, "config.json", _raise_exceptions_for_missing_entries=False)
    return hub_commit(resolved) if resolved else None


def write_marker(path: str | Path, kind: str, **fields) -> None:
    """Write `dfer_encoder.json` into a saved model folder."""
    marker = {"family": "hf", "kind": kind, **fields}
    (Path(path) / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def load_weights(model_class: type[PreTrainedModel], source: str, config: PretrainedConfig,
                 **kwargs) -> PreTrainedModel:
    """`from_pretrained` in float32 that insists no weight of the model is missing.

    Checkpoints hold more than the encoder (a CTC head, a text tower, a decoder, the blocks above the chosen
    layer); transformers reports each such weight as "unexpected" in a long report on every load. That report is
    filtered out and checked here instead: a missing weight, which transformers would leave random, is an error.
    """
    logger = logging.getLogger("transformers.modeling_utils")
    drop_report = _DropLoadReport()
    logger.addFilter(drop_report)
    try:
        model, info = model_class.from_pretrained(source, config=config, dtype=torch.float32,
                                                  output_loading_info=True, **kwargs)
    finally:
        logger.removeFilter(drop_report)
    if info["missing_keys"]:
        raise ValueError(f"{source} lacks weights of {model_class.__name__}: {', '.join(sorted(info['missing_keys']))}")
    return model


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()
