"""The one place that turns an encoder spec, or what a store's fingerprint recorded, into an encoder.

Every stage builds its encoders here: extraction from the spec it was given, and evaluate, fine-tune, predict and
serve from the fingerprint of the store a run was trained on (same spec, same seed for random weights), so tokens
at prediction time come from exactly the encoder that made the training tokens.

Specs (one string, the same in every command, recorded in the fingerprint as the encoder's `id`):

| spec | kind | what |
|---|---|---|
| `random:<arch>` | both | the default classes (SigLIP2 vision tower, NeMo FastConformer), random init, seeded |
| `ge2e[,layer=N]` | audio | resemblyzer 0.1.4's pretrained GE2E LSTM, layer N (1..3, default 2), 256-d every 10 ms |
| `mel` | audio | the FastConformer's NeMo log-mel front end, 80-d every 10 ms, no encoder (an ablation) |
| `acoustic` | audio | pitch (pYIN), voicing, loudness and spectral shape (librosa), 30-d every 10 ms, no weights |
| `egemaps` | audio | openSMILE's eGeMAPS v02 descriptors (prosody), 25-d every 10 ms, no weights; research licence |
| `hf:<hub id or path>[,layer=N]` | audio | wav2vec2 / HuBERT / WavLM / Whisper's encoder, hidden layer N |
| `hf:<hub id or path>` | vision | CLIP vision, DINOv2, ViT: patch tokens, class and register tokens dropped |
| `faceapi` | vision | face-api.js's pretrained FaceExpressionNet (weights vendored from npm), 7x7 grid of 256-d tokens |
| `mediapipe` | actions | MediaPipe's FaceLandmarker (bundle vendored): 52 blendshapes + head pose, 58-d per frame |
| a folder | both | a fine-tuned encoder saved by stage 3 (its config says which family) |
| anything else | both | SigLIP2 (vision) or a NeMo ASR model (audio): a hub id, a local model folder, a `.nemo` file |

ge2e, acoustic and faceapi need only the core install; the SigLIP2 and `hf:` families need the `[hf]` extra
(transformers), the NeMo ones and `mel` the `[nemo]` extra, `egemaps` `[prosody]`, `mediapipe` `[actions]`: building
one without it fails in one line naming the extra.

Every encoder built is an `Encoder` (`dfer.encoders.base`). The families named by their spec are the `FAMILIES`
registry below: a new one is its module and one line there.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import NamedTuple

import torch

from dfer.encoders.base import Encoder, FrameEncoder, ImageEncoder, WaveformEncoder
from dfer.encoders.hub import cached, offline_unless_resolvable
from dfer.encoders.presets import RANDOM_PREFIX
from dfer.errors import EncoderUnavailable
from dfer.extras import require
from dfer.streams import INPUTS

HF_PREFIX = "hf:"
# The encoder fields that fix the shapes of the tokens heads are built for, by kind.
SHAPE_FIELDS = {base.kind: base.shape_fields for base in (ImageEncoder, WaveformEncoder, FrameEncoder)}
KINDS = tuple(SHAPE_FIELDS)


class Family(NamedTuple):
    """A family a spec names by its name (`name[,option=N]`), and a folder its `save` wrote by its config's format
    (`dfer.<name>/...`). Its loader takes `folder=` (a saved folder) or its options, and `device=`, `meta=`."""

    kind: str
    loader: str  # "module:function", imported on first use
    options: tuple[str, ...] = ()  # the integer options its spec takes
    needs: tuple[str, str] | None = None  # (module, extra): an optional package its loader imports


# The named families. A new one needs its module (an `Encoder` subclass and its loader) and one line here.
FAMILIES: dict[str, Family] = {
    "ge2e": Family("audio", "dfer.encoders.ge2e:load_ge2e", options=("layer",)),
    "mel": Family("audio", "dfer.encoders.audio:load_mel", needs=("nemo", "nemo")),
    # openSMILE: a research-only licence
    "egemaps": Family("audio", "dfer.encoders.egemaps:load_egemaps", needs=("opensmile", "prosody")),
    "acoustic": Family("audio", "dfer.encoders.acoustic:load_acoustic"),
    "faceapi": Family("vision", "dfer.encoders.faceapi:load_faceapi"),
    "mediapipe": Family("actions", "dfer.encoders.actions:load_mediapipe", needs=("mediapipe", "actions")),
}


def build_encoder(kind: str, spec: str, seed: int = 0, device: str | torch.device = "cpu",
                  meta: bool = False) -> Encoder:
    """The `kind` ("vision", "audio" or "actions") encoder a spec names, in eval mode. `seed` only matters for
    `random:`; `meta=True` builds on the meta device from configs alone (parameter counts).

    Weights that must come from the hub and cannot (no network: transformers' "We couldn't connect to
    'https://huggingface.co'", NeMo's own OSError) raise `EncoderUnavailable`, one line naming the spec and how to
    pass a local copy, in place of a long traceback from inside the libraries. Where the hub's name does not
    resolve, that is known at once (`dfer.encoders.hub`): the local cache serves what it holds, and nothing is
    retried."""
    if kind not in KINDS:
        raise ValueError(f"encoder kind must be one of {KINDS}, not {kind!r}")
    if kind == "actions":
        frame_families = sorted(name for name, family in FAMILIES.items() if family.kind == "actions")
        if spec.split(",")[0] not in frame_families:
            raise ValueError(f"{spec}: whole frames are read by a named family: {', '.join(frame_families)}")
    module, extra = _needs(kind, spec)
    if module is not None:
        require(f"the {kind} encoder {spec}", extra, module)
    repo = _hub_id(spec)
    if repo is None:
        return _build(kind, spec, seed, device, meta)
    with offline_unless_resolvable() as unresolved:
        if unresolved and not cached(repo):
            raise _unavailable(kind, spec, f"{unresolved} does not resolve, and the local Hugging Face cache does "
                                           "not hold it")
        try:
            return _build(kind, spec, seed, device, meta)
        except OSError as error:
            if unresolved:
                reason = f"{unresolved} does not resolve, and the local Hugging Face cache does not hold all of it"
            else:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise _unavailable(kind, spec, reason) from error


def _unavailable(kind: str, spec: str, reason: str) -> EncoderUnavailable:
    local = "a local model folder" if kind == "vision" else "a local .nemo file or model folder"
    return EncoderUnavailable(f"{kind} encoder {spec}: could not get its weights from the Hugging Face hub ({reason}); "
                              f"download them where the hub can be reached and pass {local} instead: "
                              f"--{kind} /path/to/it")


def _needs(kind: str, spec: str) -> tuple[str | None, str | None]:
    """The optional package (module, extra) building `spec` imports: transformers for SigLIP2 and `hf:`, NeMo for
    the FastConformer, a named family's own; (None, None) for one the core builds."""
    family = _saved_family(spec)
    if spec.startswith(HF_PREFIX) or family == "hf":
        return "transformers", "hf"
    name = family or spec.split(",")[0]
    if name in FAMILIES:
        return FAMILIES[name].needs or (None, None)
    return ("transformers", "hf") if kind == "vision" else ("nemo", "nemo")


def _hub_id(spec: str) -> str | None:
    """The hub repository a spec names weights to download from, None for a local path or a family dfer builds
    itself; ValueError for an `hf:` spec that does not parse."""
    if spec.startswith(RANDOM_PREFIX) or spec.split(",")[0] in FAMILIES:
        return None
    source = _options(spec, HF_PREFIX, ("layer",))[0] if spec.startswith(HF_PREFIX) else spec
    return None if Path(source).exists() else source


def _build(kind: str, spec: str, seed: int, device: str | torch.device, meta: bool) -> Encoder:
    if spec.startswith(HF_PREFIX):
        source, options = _options(spec, HF_PREFIX, ("layer",))
        if kind == "vision":
            from dfer.encoders.hf_vision import load_hf_vision

            if options:
                raise ValueError(f"{spec}: vision encoders take no options")
            return load_hf_vision(source, device=device, meta=meta, spec=spec)
        from dfer.encoders.hf_audio import load_hf_audio

        return load_hf_audio(source, layer=options.get("layer"), device=device, meta=meta, spec=spec)
    folder_family = _saved_family(spec)
    if folder_family == "hf":
        return _build(kind, HF_PREFIX + spec, seed, device, meta)
    name = folder_family or spec.split(",")[0]
    if name in FAMILIES:
        family = FAMILIES[name]
        if kind != family.kind:
            raise ValueError(f"{spec}: the {name} family is a {family.kind} encoder, it cannot be the {kind} one")
        arguments = {"folder": spec} if folder_family else _options(spec, name, family.options)[1]
        module, function = family.loader.split(":")
        return getattr(importlib.import_module(module), function)(**arguments, device=device, meta=meta)
    if kind == "vision":
        from dfer.encoders.vision import load_vision

        return load_vision(spec, seed=seed, device=device, meta=meta)
    from dfer.encoders.audio import load_audio

    return load_audio(spec, seed=seed, device=device, meta=meta)


def stream_encoder(spec: str) -> tuple[str, str]:
    """A stream's spec (`--stream NAME=SPEC`) -> (the encoder kind, the encoder spec). A named family says its input
    (`faceapi` reads faces, `ge2e` the waveform, `mediapipe` whole frames); any other spec says it first,
    `face:SPEC` or `waveform:SPEC` (`waveform:hf:facebook/wav2vec2-base`, `face:random:tiny`)."""
    for kind, input_name in INPUTS.items():
        if spec.startswith(input_name + ":"):
            return kind, spec[len(input_name) + 1:]
    family = FAMILIES.get((_saved_family(spec) or spec).split(",")[0])
    if family is None:
        raise ValueError(f"{spec}: say which input its encoder reads, face:{spec} or waveform:{spec} "
                         f"(named families know theirs: {', '.join(sorted(FAMILIES))})")
    return family.kind, spec


def seed_of(recorded: dict) -> int:
    """The seed a fingerprint's encoder entry was built with: `seed=N` for random weights, 0 for anything else."""
    if not str(recorded["id"]).startswith(RANDOM_PREFIX):
        return 0
    return int(str(recorded["revision"]).removeprefix("seed="))


def rebuild_encoder(kind: str, recorded: dict, device: str | torch.device = "cpu", source: str | Path | None = None):
    """The encoder a fingerprint entry records (its spec and seed), or `source` in its place (a fine-tuned folder,
    a `--vision/--audio` override), checked to give tokens of the recorded shapes. In eval mode."""
    spec = str(source) if source is not None else recorded["id"]
    encoder = build_encoder(kind, spec, seed=seed_of(recorded) if source is None else 0, device=device)
    found = encoder.describe()
    wrong = [f"{kind}.{key}: expected {recorded[key]!r}, encoder {spec} gives {found[key]!r}"
             for key in SHAPE_FIELDS[kind] if recorded.get(key) != found.get(key)]
    if wrong:
        raise ValueError(f"encoder {spec} does not give the tokens the heads were built for:\n  " + "\n  ".join(wrong))
    return encoder.eval()


def _options(spec: str, prefix: str, allowed: tuple[str, ...]) -> tuple[str, dict]:
    """`hf:<source>[,layer=N]` -> (source, {"layer": N}); `ge2e[,layer=N]` -> ("", {"layer": N}); each option one
    of `allowed`, an integer."""
    source, *pairs = spec[len(prefix):].split(",")
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in allowed or not value.lstrip("-").isdigit():
            takes = " or ".join(f"`,{option}=N` (an integer)" for option in allowed)
            raise ValueError(f"{spec}: options are {takes}, not {pair!r}" if allowed else
                             f"{spec}: takes no options, not {pair!r}")
        options[key] = int(value)
    if prefix == HF_PREFIX and not source:
        raise ValueError(f"{spec}: give a hub id or a path after {HF_PREFIX!r}")
    return source, options


def _saved_family(spec: str) -> str | None:
    """The family of an encoder folder stage 3 saved: "hf" (its `dfer_encoder.json`), a named family (its config's
    format, `dfer.<name>/...`), or None (a FastConformer or SigLIP folder, or not a folder at all)."""
    path = Path(spec)
    if not path.is_dir():
        return None
    if (path / "dfer_encoder.json").exists():
        return "hf"
    config = path / "config.json"
    saved_format = str(json.loads(config.read_text()).get("format", "")) if config.exists() else ""
    return next((name for name in FAMILIES if saved_format.startswith(f"dfer.{name}/")), None)
