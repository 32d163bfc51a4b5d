"""Late fusion across runs: several trained runs (or bundled models) answer one file together, e.g. the `voice` and
`face` models (`dfer predict FILE --model voice --model face [--weights 1,1]`, and the default with no --model).

**How answers combine** (`fuse`): the members' class probabilities are matched by display name, and the fused score
of a class is the weighted mean of the members' log-probabilities (a weighted geometric mean, i.e. a product of
experts: a class one member rules out stays unlikely, which a mean of probabilities would not do), then softmax over
the union of the classes. A class only some members know (RAVDESS's calm, which `face` has no word for): a member
without it counts as neither for nor against it relative to its own alternatives, with the mean of its
log-probabilities over its own classes. So a face member sure of "happy" votes against calm as much as against its
other unlikely classes, and a hesitant face member hardly at all.

**Abstaining**: a member with nothing to read on a clip abstains and is left out of the mean: a run that only sees,
on a clip without a face (or an audio file); a run that only hears, on a clip without sound; an audio-visual run on a
clip with neither. The answer lists each member's probabilities, or why it abstained. When every member abstains the
file is unusable.

**Shared work**: the file is decoded once (the members must decode alike: the same frames, sample rate and window,
checked when the ensemble is built), faces are detected and cropped once per crop setting, and members whose
fingerprints name the same encoder share the one built.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfer.adapt.moments import Moments
from dfer.faces import FaceTrace, FaceTrack
from dfer.media.decode import DecodedClip
from dfer.media.probe import is_audio_only
from dfer.models import DEFAULT_MODELS
from dfer.predict.predictor import EncodedFile, FilePredictor, GroupOf, Predictor, UnusableClip

# What the members must share to decode a file once
DECODING = ("frames", "sample_rate", "max_seconds", "frame_short_side")


def fuse(answers: list[tuple[list[str], np.ndarray, float]]) -> tuple[list[str], np.ndarray]:
    """answers: per member (its class names, its probabilities (C_m,), its weight) -> (the union of the names, in
    order of first appearance, and the fused probabilities over them). See the module docstring for the rule."""
    names = list(dict.fromkeys(name for labels, _, _ in answers for name in labels))
    score, total = np.zeros(len(names)), 0.0
    for labels, probs, weight in answers:
        logs = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None))  # (C_m,)
        mine = dict(zip(labels, logs))
        indifferent = logs.mean()  # its stance on a class it has no word for
        score += weight * np.array([mine.get(name, indifferent) for name in names])
        total += weight
    score /= total
    fused = np.exp(score - score.max())
    return names, fused / fused.sum()


def abstains(predictor: Predictor, record: dict) -> str | None:
    """Why a member has nothing to go on in this clip (its `predict_file` record), or None."""
    face = bool(record["has_video"]) and bool(record["face_found_ratio"])
    sound = bool(record["has_audio"])
    if not predictor.hears and not face:
        return "no face" if record["has_video"] else "no video"
    if not predictor.sees and not sound:
        return "no audio track"
    if not (face or sound):
        return "no face and no audio track"
    return None


class Ensemble(FilePredictor):
    """Runs fused into one model, with a Predictor's interface for `dfer predict`, `--timeline` and `dfer serve`."""

    def __init__(self, runs: list[str | Path], device: str = "cpu", weights: list[float] | None = None):
        if len(runs) < 2:
            raise ValueError("an ensemble fuses two runs or more")
        weights = [1.0] * len(runs) if weights is None else [float(w) for w in weights]
        if len(weights) != len(runs) or min(weights) <= 0:
            raise ValueError(f"--weights needs {len(runs)} positive numbers, one per --model, not {weights}")
        encoders: dict = {}  # shared by the members' Predictors
        self.members = [Predictor(run, device, encoders=encoders) for run in runs]
        self.weights = weights
        first = self.members[0]
        for member in self.members[1:]:
            differ = [key for key in DECODING if getattr(member, key) != getattr(first, key)]
            if differ:
                raise ValueError(f"{member.run} and {first.run} decode a file differently ({', '.join(differ)}: "
                                 f"{[getattr(member, k) for k in differ]} vs {[getattr(first, k) for k in differ]}); "
                                 "fuse runs made with the same frames, sample rate, --max-seconds and face settings")
        self.frames, self.sample_rate, self.max_seconds, self.frame_short_side = (getattr(first, key)
                                                                                  for key in DECODING)
        self.run = " + ".join(str(member.run.name) for member in self.members)
        self.config = first.config  # the timeline's default window: the first member's training clip length
        self.device = first.device
        self.labels = list(dict.fromkeys(label for member in self.members for label in member.labels))
        self.classes = self.labels  # the members' codes differ by dataset: the fused classes are the words
        self.modalities = "+".join(member.modalities for member in self.members)
        self.warnings = [f"{member.run.name}: {warning}" for member in self.members for warning in member.warnings]
        self.hears = any(member.hears for member in self.members)  # what decoding asks: the sound, when any member hears
        self.suffixes = set().union(*(member.suffixes for member in self.members))
        self.trained_adapt = any(member.trained_adapt for member in self.members)
        self.encoder_records = {key: record for member in self.members for key, record in member.encoder_records.items()}

    def describe(self) -> dict:
        return {"run": self.run, "classes": self.classes, "labels": self.labels, "modalities": self.modalities,
                "members": [{**member.describe(), "weight": weight}
                            for member, weight in zip(self.members, self.weights)],
                "frames": self.frames, "device": str(self.device), "warnings": self.warnings}

    def check_readable(self, path: Path) -> bool:
        """Whether `path` is an audio-only file; UnusableClip when it is one and no member hears."""
        audio_only = is_audio_only(path)
        if audio_only and not self.hears:
            raise UnusableClip(path, "an audio file, and none of these runs hears: they need a video")
        return audio_only

    def predict_clip(self, path: Path, decoded: DecodedClip, follow: FaceTrace | None = None,
                     seconds: dict | None = None, group_of: GroupOf | None = None) -> tuple[dict, FaceTrack | None]:
        """As `Predictor.predict_clip`: every member on the one decoded clip, one face track per crop setting."""
        encoded = self.encode_clip(path, decoded, follow, seconds)
        return self.score(encoded, None if group_of is None else group_of(encoded)), encoded.track

    def encode_clip(self, path: Path, decoded: DecodedClip, follow: FaceTrace | None = None,
                    seconds: dict | None = None) -> EncodedMembers:
        """Faces (once per crop setting) and each member's encoders on one decoded clip; a member that cannot read
        it abstains here, with its reason."""
        seconds = dict(seconds or {})
        tracks: dict[tuple, FaceTrack | None] = {}
        members: list[EncodedFile | str] = []
        for member in self.members:
            try:
                key = member.crop_settings
                if key is not None and key not in tracks:
                    started = time.perf_counter()
                    tracks[key] = member.face_track(path, decoded, follow)
                    seconds["faces"] = seconds.get("faces", 0.0) + time.perf_counter() - started
                members.append(member.encode_track(path, decoded, tracks.get(key), {}))
            except UnusableClip as error:
                members.append(error.reason)
        track = next((track for track in tracks.values() if track is not None), None)
        return EncodedMembers(path, decoded, members, track, seconds)

    def moments(self, encoded: EncodedMembers) -> dict[str, Moments]:
        """Adaptation key -> moments of the clip's tokens, over the members that adapt (members sharing an encoder
        share its key: its tokens count once)."""
        found: dict[str, Moments] = {}
        for member, one in zip(self.members, encoded.members):
            if not isinstance(one, str):
                found.update(member.moments(one))
        return found

    def score(self, encoded: EncodedMembers, group: dict[str, Moments] | None = None) -> dict:
        """Every member's answer on an encoded clip (`encode_clip`), fused; `group` as in `Predictor.score`."""
        seconds = dict(encoded.seconds)
        records, answers, notes = [], [], list(encoded.decoded.notes)
        for member, weight, one in zip(self.members, self.weights, encoded.members):
            name = member.run.name
            record = one if isinstance(one, str) else member.score(one, group)
            reason = record if isinstance(record, str) else abstains(member, record)
            if reason is not None:
                records.append({"run": name, "abstained": reason})
                notes.append(f"{name} abstained: {reason}")
                continue
            for stage, value in record["seconds"].items():
                seconds[stage] = seconds.get(stage, 0.0) + value
            records.append({"run": name, "weight": weight, **{key: record[key] for key in ("labels", "probs", "top1")}})
            answers.append((record["labels"], np.asarray(record["probs"]), weight))
            if group is not None:
                notes.append(f"{name}: {member.adaptation(group)[1]}")
        if not answers:
            why = "; ".join(f"{r['run']}: {r['abstained']}" for r in records)
            raise UnusableClip(encoded.path, f"every member abstained ({why})")
        names, probs = fuse(answers)
        track, decoded = encoded.track, encoded.decoded
        return {
            "path": str(encoded.path), "labels": names, "classes": names,
            "probs": [round(p, 6) for p in probs.tolist()], "top1": names[int(probs.argmax())], "members": records,
            "face_found_ratio": None if track is None else round(float(np.mean(track.face_found)), 4),
            "has_video": decoded.frames is not None,
            "has_audio": decoded.waveform is not None and decoded.waveform.size > 0,
            "notes": "; ".join(notes), "seconds": {stage: round(value, 4) for stage, value in seconds.items()},
        }


@dataclass
class EncodedMembers:
    """One clip after faces and every member's encoders: each member's EncodedFile, or why it abstains."""

    path: Path
    decoded: DecodedClip
    members: list[EncodedFile | str]
    track: FaceTrack | None
    seconds: dict[str, float]


def load_model(models: list[str | Path] | None, device: str = "cpu", weights: list[float] | None = None):
    """What `--model` names: one run's Predictor, an Ensemble of several, or with none the default fused pair."""
    models = list(models or DEFAULT_MODELS)
    if len(models) == 1:
        if weights is not None and len(weights) != 1:
            raise ValueError("--weights is for fusing several --model runs")
        return Predictor(models[0], device)
    return Ensemble(models, device, weights)

