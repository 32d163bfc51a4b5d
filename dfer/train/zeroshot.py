"""`dfer zeroshot`: what the pretrained vision network knows, with nothing trained, on exactly the splits, metrics
and run folders of `dfer train` and `dfer probe`.

The model is the store's vision encoder's own classifier (`encoder.classifier`, a family that has one records its
`labels` in the fingerprint: `faceapi`) over each cached face frame, combined over the clip's frames with a face
(`dfer.heads.zeroshot.ZeroShot` says how and why). Its labels are matched to the store's classes by meaning
(`dfer.data.names.match_labels`: face-api's "disgusted" is CREMA-D's DIS); the store classes no label means are
listed in config.json ("unmatched") and printed, and they count in UAR all the same, so the figure stays comparable
with the probe's and the heads'. The only thing fitted is the class prior a clip without a face gets: the class
frequencies of the split's training and validation clips.

A run folder holds config.json (`run_config` with "model": "zeroshot", "zeroshot": these settings, "heads": the
ZeroShot's arguments, "unmatched"), best.safetensors (the classifier and the prior), and with a test set results.json
and the per-clip files, as `dfer.train.protocol` lays them out; `evaluate`, `predict`, `serve` and `explain` take it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch.utils.data import DataLoader

from dfer import distributed
from dfer.data.names import match_labels
from dfer.encoders import rebuild_encoder
from dfer.encoders.action_units import EMOTIONS
from dfer.heads import ZeroShot
from dfer.heads.zeroshot import ACTION_WEIGHT
from dfer.streams import check_modalities
from dfer.inference.batch import collate
from dfer.inference.score import predict
from dfer.recipe import settings_from
from dfer.runs.card import write_card
from dfer.runs.files import save_weights, write_json
from dfer.store.reader import CacheReader
from dfer.train.data import CachedClips
from dfer.train.protocol import ProtocolResult, run_config, run_protocol, write_test_results
from dfer.train.splits import Split

console = Console()


@dataclass(kw_only=True)
class ZeroShotConfig:
    fold: str = "all"  # a fold number, "all", or "none" (every clip sets the prior: a final model)
    seed: int = 0  # picks the validation speakers, as `dfer train`'s does (they only count towards the prior)
    val_fraction: float = 0.15
    batch_size: int = 32  # clips scored at once
    # The clips the splits hold (`dfer.train.splits.plan`), as for the heads: "av" scores every clip the heads of an
    # audio-visual run are scored on, a clip without video with the prior; "video" only clips with video.
    modalities: str = "av"
    # Combine the network's answer with the face actions' EMFACS prototype matches (`dfer.heads.zeroshot`): the run
    # then reads the faces' blendshapes, which a store does not hold, so its test clips cannot be scored here.
    actions: bool = False

    def __post_init__(self):
        self.fold = str(self.fold)
        check_modalities(self.modalities)

    def to_dict(self) -> dict:
        """The settings a run's config.json records; `actions` only when on, so a run without them records what every
        zero-shot run recorded before them."""
        settings = dataclasses.asdict(self)
        return settings if self.actions else {k: v for k, v in settings.items() if k != "actions"}


def make_zeroshot_config(recipe: Path | None = None, **overrides) -> ZeroShotConfig:
    return settings_from(ZeroShotConfig, recipe, "zeroshot", **overrides)


def has_classifier(fingerprint: dict) -> bool:
    """The store's vision encoder carries its own classifier (its fingerprint entry records the labels)."""
    return bool((fingerprint.get("vision") or {}).get("labels"))


def zeroshot(store: Path, out: Path, cfg: ZeroShotConfig, show: bool = True) -> ProtocolResult:
    """Score the vision encoder's own classifier on every split of `cfg.fold` into `out`, as `dfer train` lays out
    its runs."""
    if cfg.actions and cfg.fold != "none":
        raise ValueError(f"{store}: a zero-shot run reading face actions cannot score test clips from a store, which "
                         "holds no blendshapes: use --fold none, then dfer predict on the video files")
    shared: dict[str, torch.nn.Module] = {}

    def run_split(reader: CacheReader, split: Split, run: Path) -> dict:
        if "classifier" not in shared:
            shared["classifier"] = vision_classifier(reader)
        return _zeroshot_split(reader, split, run, cfg, shared["classifier"], show)

    result = run_protocol(store, out, cfg, "zero-shot", run_split, show)
    if distributed.ranks().is_main:
        write_card(Path(out))
    return result


def vision_classifier(reader: CacheReader) -> torch.nn.Module:
    """The store's vision encoder's own classifier (a `TokenClassifier`), from the encoder its fingerprint names."""
    if not has_classifier(reader.fingerprint):
        vision = (reader.fingerprint.get("vision") or {}).get("id")
        raise ValueError(f"{reader.path}: zero-shot reads the `video` stream, whose vision encoder must have a "
                         f"classifier of its own; this store's {vision!r} has no classifier of its own (the faceapi "
                         "family has one: --preset lite)")
    return rebuild_encoder("vision", reader.fingerprint["vision"]).classifier


def build_zeroshot(reader: CacheReader, classifier: torch.nn.Module,
                   actions: bool = False) -> tuple[ZeroShot, list[str]]:
    """The ZeroShot model of `classifier` on the store's classes (with `actions`, reading the face actions too), and
    the store classes no label of it means."""
    names = reader.display_names
    class_of_label = match_labels(classifier.labels, names)
    if max(class_of_label) < 0:
        raise ValueError(f"{reader.path}: none of the vision classifier's labels {classifier.labels} means one of "
                         f"the store's classes {names}")
    class_of_emotion = match_labels(list(EMOTIONS), names) if actions else None
    if actions and max(class_of_emotion) < 0:
        raise ValueError(f"{reader.path}: none of the face actions' prototypes {', '.join(EMOTIONS)} means one of "
                         f"the store's classes {names}")
    model = ZeroShot(classifier.dim, classifier.labels, class_of_label, len(names),
                     actions=ACTION_WEIGHT if actions else 0.0, class_of_emotion=class_of_emotion)
    model.classifier.load_state_dict(classifier.state_dict())
    unmatched = [name for i, name in enumerate(names) if i not in class_of_label]
    return model, unmatched


def _zeroshot_split(reader: CacheReader, split: Split, run: Path, cfg: ZeroShotConfig, classifier: torch.nn.Module,
                    show: bool) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    model, unmatched = build_zeroshot(reader, classifier, cfg.actions)
    fitting = split.train + split.val
    model.set_prior(torch.from_numpy(reader.read_all("label")[np.asarray(fitting, np.int64)]))
    write_json(run / "config.json", run_config(reader, split, model="zeroshot", zeroshot=cfg.to_dict(),
                                                          heads=model.config, unmatched=unmatched))
    save_weights(model, run / "best.safetensors")
    if show:
        console.print(f"[bold]{run}[/]: zero-shot {reader.fingerprint['vision']['id']} classifier "
                      f"({', '.join(classifier.labels)}); class prior from {len(fitting)} clips, "
                      f"{len(split.test)} test clips")
        if unmatched:
            console.print(f"  never predicted (the classifier has no such label): {', '.join(unmatched)}")
    if not split.test:
        return {}
    loader = DataLoader(CachedClips(reader, split.test, "video"), batch_size=cfg.batch_size, collate_fn=collate)
    labels, probs = predict(model, loader, torch.device("cpu"))
    faceless = _faceless(reader, split.test)
    if show and faceless:
        console.print(f"  {len(faceless)} test clips have no face: they get the class prior ({', '.join(faceless)})")
    return write_test_results(run, reader, split.name, split.test, labels, probs,
                              f"{reader.attrs['dataset']} {split.name} zero-shot", show, faceless=faceless)


def _faceless(reader: CacheReader, indices: list[int]) -> list[str]:
    """The clip ids of the rows `indices` without one frame with a face."""
    rows = np.asarray(indices, np.int64)
    found = reader.read_all("video/face_found")[rows].any(1)  # (n,)
    return [str(clip) for clip in reader.read_all("clip_id")[rows][~found]]
