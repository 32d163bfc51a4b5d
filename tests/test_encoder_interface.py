"""Every encoder family, built through the one builder at its smallest real size (random tiny configs, the shipped
ge2e and faceapi weights, tiny transformers checkpoints saved as the hub holds them), implements `Encoder`: the
record its `describe()` gives the store's fingerprint has the fields the store needs, keys unchanged, and rebuilds
the same encoder; `parts()` is what stage 3 trains."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from dfer.encoders import SHAPE_FIELDS, build_encoder, rebuild_encoder
from dfer.encoders.base import Encoder, FrameEncoder, ImageEncoder, WaveformEncoder, Weightless
from dfer.encoders.build import FAMILIES
from dfer.store.schema import Layout

_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
# family -> transformers class and config of a tiny checkpoint (built by `_hf_spec`)
_HF = {
    "hf-vision": ("ViTModel", transformers.ViTConfig(**_TINY, image_size=32, patch_size=16)),
    "hf-audio": ("HubertModel", transformers.HubertConfig(
        **_TINY, conv_dim=(8, 8), conv_kernel=(10, 8), conv_stride=(5, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="group")),
}
# family -> (kind, spec or None for a tiny hf: checkpoint), every family the builder knows: the two defaults, hf:
# of each kind, and every named family of the registry.
FAMILY_SPECS = {
    "siglip2": ("vision", "random:tiny"),
    "fastconformer": ("audio", "random:tiny"),
    "hf-vision": ("vision", None),
    "hf-audio": ("audio", None),
    **{name: (family.kind, name) for name, family in FAMILIES.items()},
}
# What each family's fingerprint record holds, in order: saved stores and runs compare these records key by key.
RECORD_KEYS = {
    "siglip2": ["id", "revision", "dim", "image_size", "num_tokens", "grid"],
    "hf-vision": ["id", "revision", "dim", "image_size", "num_tokens", "grid", "family"],
    "faceapi": ["id", "revision", "dim", "image_size", "num_tokens", "grid", "family", "crop_margin", "labels"],
    "fastconformer": ["id", "revision", "dim", "sample_rate", "frame_seconds"],
    "mel": ["id", "revision", "dim", "sample_rate", "frame_seconds"],
    "ge2e": ["id", "revision", "dim", "sample_rate", "frame_seconds", "layer"],
    "egemaps": ["id", "revision", "dim", "sample_rate", "frame_seconds", "feature_set", "features"],
    "acoustic": ["id", "revision", "dim", "sample_rate", "frame_seconds", "features"],
    "hf-audio": ["id", "revision", "dim", "sample_rate", "frame_seconds", "family", "layer"],
    "mediapipe": ["id", "revision", "dim", "points", "features"],
}
BASES = {"vision": ImageEncoder, "audio": WaveformEncoder, "actions": FrameEncoder}


def _hf_spec(family: str, folder) -> str:
    class_name, config = _HF[family]
    torch.manual_seed(0)
    getattr(transformers, class_name)(config).save_pretrained(folder)
    return f"hf:{folder}"


@pytest.fixture(scope="module", params=list(FAMILY_SPECS))
def family_encoder(request, tmp_path_factory) -> tuple[str, str, Encoder]:
    kind, spec = FAMILY_SPECS[request.param]
    spec = spec or _hf_spec(request.param, tmp_path_factory.mktemp(request.param))
    return request.param, kind, build_encoder(kind, spec)


def test_every_family_is_an_encoder_of_its_kind(family_encoder):
    family, kind, encoder = family_encoder
    assert isinstance(encoder, BASES[kind])
    assert encoder.kind == kind and encoder.shape_fields == SHAPE_FIELDS[kind]
    shape = {"vision": "crop_margin", "audio": "frame_seconds", "actions": "points"}[kind]
    assert isinstance(getattr(encoder, shape), int if kind == "actions" else float)


def test_describe_is_the_fingerprint_record_the_store_needs(family_encoder):
    family, kind, encoder = family_encoder
    record = encoder.describe()
    assert list(record) == RECORD_KEYS[family]
    assert record["id"] == encoder.spec and record["revision"] == encoder.revision
    assert {name: record[name] for name in SHAPE_FIELDS[kind]} == {name: getattr(encoder, name)
                                                                  for name in SHAPE_FIELDS[kind]}
    assert json.loads(json.dumps(record)) == record  # plain JSON, as the store's attributes keep it
    # the store's layout is made from the records, and the record rebuilds the encoder it came from
    other = {"vision": {"image_size": 64, "num_tokens": 16, "dim": 32},
             "audio": {"dim": 32, "frame_seconds": 0.08, "sample_rate": 16000}}
    records = {**other, kind: record}
    streams = {"video": "vision", "audio": "audio", "actions": "actions"}  # stream -> kind
    layout = Layout.from_settings(2, {name: (k, records[k]) for name, k in streams.items() if k in records},
                                  max_seconds=1.0, keep_media=False)
    assert layout.tokens[next(name for name, k in streams.items() if k == kind)].shape[-1] == encoder.dim
    assert rebuild_encoder(kind, record).describe() == record


def test_parts_are_the_encoders_own_modules(family_encoder):
    family, kind, encoder = family_encoder
    if isinstance(encoder, Weightless):  # mel, egemaps, acoustic, mediapipe
        with pytest.raises(ValueError, match="no weights"):
            encoder.parts()
        return
    parts = encoder.parts()
    own = {id(module) for module in encoder.modules()}
    assert parts.blocks and id(parts.root) in own
    assert all(id(module) in own for module in parts.stem + parts.blocks + parts.final + parts.beside)
    stack = parts.stem + parts.blocks + parts.final
    assert not {id(p) for m in stack for p in m.parameters()} & {id(p) for m in parts.beside for p in m.parameters()}


@pytest.mark.parametrize("family", [family for family, (kind, _) in FAMILY_SPECS.items() if kind == "vision"])
def test_image_families_read_uint8_and_unit_floats_alike_and_refuse_another_size(family, tmp_path):
    """A crop reaches an image encoder as uint8 (the store's) or as float in 0..1 (stage 3's augmented crops): both
    must give the same tokens, and a crop of another size is refused rather than read as a differently framed face."""
    kind, spec = FAMILY_SPECS[family]
    encoder = build_encoder(kind, spec or _hf_spec(family, tmp_path))
    size = encoder.image_size
    crops = torch.randint(0, 256, (2, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(encoder(crops), encoder(crops.float() / 255.0), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match=f"expected {size}x{size} images"):
            encoder(crops[..., :-1, :-1])
