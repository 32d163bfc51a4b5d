"""Face actions in FACS terms (`dfer.encoders.action_units`), the zero-shot run that reads them
(`dfer zeroshot --actions`, `dfer.heads.zeroshot`) and the actions `dfer explain` names in words
(`dfer.predict.action_words`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dfer.cli import app
from dfer.encoders import build_encoder
from dfer.encoders.action_units import ACTIONS, EMOTIONS, PROTOTYPES, action_intensities, prototype_match
from dfer.encoders.face_actions import BLENDSHAPES
from dfer.errors import MissingExtra
from dfer.extras import installed
from dfer.heads import ZeroShot
from dfer.heads.zeroshot import ACTION_WEIGHT
from dfer.media.decode import decode_clip
from dfer.predict.action_words import MIN_MOVED, describe_actions, explain_actions, moved_actions
from dfer.predict.predictor import Predictor
from dfer.testing.synthetic_store import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
HAPPY = REPO / "samples" / "cremad" / "VideoFlash" / "1001_DFA_HAP_XX.flv"
FACEAPI = build_encoder("vision", "faceapi", meta=True).describe()


def blendshapes(**values: float) -> torch.Tensor:
    """(52,) zeros but the named blendshapes."""
    out = torch.zeros(len(BLENDSHAPES))
    for name, value in values.items():
        out[BLENDSHAPES.index(name)] = value
    return out


def showing(units: tuple[int, ...]) -> torch.Tensor:
    """(52,) every blendshape that gives one of `units`, both sides, at full strength."""
    names = [name for name, (au, _) in ACTIONS.items() if au in units]
    return blendshapes(**{shape: 1.0 for shape in BLENDSHAPES for name in names if shape.startswith(name)})


def test_every_blendshape_is_one_action_and_every_prototype_unit_but_23_has_one():
    sides = [shape for shape in BLENDSHAPES[1:] for name in ACTIONS
             if shape in (name, name + "Left", name + "Right")]
    assert sorted(sides) == sorted(BLENDSHAPES[1:])  # each blendshape once, "_neutral" (no action) left out
    given = {au for au, _ in ACTIONS.values()}
    assert {unit for units in PROTOTYPES.values() for unit in units} - given == {23}


def test_a_smile_gives_happiness_the_top_prototype_score():
    smile = blendshapes(mouthSmileLeft=0.8, mouthSmileRight=0.7, cheekSquintLeft=0.5, cheekSquintRight=0.6)
    match = dict(zip(EMOTIONS, prototype_match(smile).tolist()))
    assert max(match, key=match.get) == "happiness"
    assert match["happiness"] == pytest.approx((0.8 + 0.6) / 2)  # AU12 and AU6, each the larger of its sides


@pytest.mark.parametrize("emotion", [e for e in PROTOTYPES if e != "contempt"])
def test_a_face_showing_a_prototype_matches_it_fully_and_is_not_neutral(emotion):
    match = dict(zip(EMOTIONS, prototype_match(showing(PROTOTYPES[emotion])).tolist()))
    assert match[emotion] == pytest.approx(1.0) and match["neutral"] == pytest.approx(0.0)
    assert prototype_match(torch.zeros(len(BLENDSHAPES)))[0] == 1  # a still face is neutral


def test_contempt_is_one_sided():
    one_side = dict(zip(EMOTIONS, prototype_match(blendshapes(mouthSmileLeft=0.6, mouthDimpleLeft=0.4)).tolist()))
    both = dict(zip(EMOTIONS, prototype_match(blendshapes(mouthSmileLeft=0.6, mouthSmileRight=0.6)).tolist()))
    assert one_side["contempt"] == pytest.approx(0.5) and both["contempt"] == 0


def test_moved_is_against_each_action_s_own_quietest_frames():
    """Two actions peaking at different frames are both named; an action held still all along (a resting face's
    low brows) is not, however strong."""
    T = 8
    frames = torch.stack([blendshapes(mouthSmileLeft=0.9 * (t < 4), browInnerUp=0.8 * (t >= 4),
                                      browDownLeft=0.5, browDownRight=0.5) for t in range(T)]).numpy()
    frames[0] = np.nan  # a frame the landmarker did not read
    moved = {action["action"]: action["moved"] for action in moved_actions(frames)}
    assert moved["mouthSmile"] == pytest.approx(0.9) and moved["browInnerUp"] == pytest.approx(0.8)
    assert moved["browDown"] == 0
    described = describe_actions(frames)
    assert described["words"] == "lip corners pulled up (smile), inner brows raised" and described["frames_read"] == 7
    assert describe_actions(np.zeros((4, 52), np.float32))["words"].startswith(f"no action moved by {MIN_MOVED}")


def test_zero_shot_with_actions_is_the_network_s_log_probability_plus_the_weighted_match():
    classes = ["angry", "calm", "happy", "neutral"]  # calm: no prototype means it
    labels = ["neutral", "happy", "angry"]
    network = ZeroShot(4, labels, [3, 2, 0], 4)
    model = ZeroShot(4, labels, [3, 2, 0], 4, actions=ACTION_WEIGHT,
                     class_of_emotion=[classes.index(e) if e in classes else -1
                                       for e in ("neutral", "happy", "angry", "none", "none", "angry", "none", "none")])
    model.load_state_dict(network.state_dict())
    smile = blendshapes(mouthSmileLeft=0.9, mouthSmileRight=0.9)
    face_actions = torch.stack([smile, torch.full((52,), float("nan")), smile])[None]  # (1, T=3, 52)
    batch = {"video_tokens": torch.randn(1, 3, 49, 4), "has_video": torch.ones(1), "face_found": torch.ones(1, 3),
             "face_actions": face_actions}
    match = prototype_match(smile)  # (E,) neutral, happiness, ..., anger (index 5)
    expected = torch.tensor([match[5], 0.0, match[1], match[0]])
    expected[1] = expected[[0, 2, 3]].mean()  # calm: the mean of the classes a prototype means
    before, after = network(batch)["logits"], model(batch)["logits"]
    assert torch.allclose(after, before + ACTION_WEIGHT * expected, atol=1e-5)
    unread = {**batch, "face_actions": torch.full((1, 3, 52), float("nan"))}
    assert torch.equal(model(unread)["logits"], before)  # no frame read: the network alone
    with pytest.raises(ValueError, match="a store does not hold"):
        model({key: value for key, value in batch.items() if key != "face_actions"})
    assert "actions" not in network.config and model.config["actions"] == ACTION_WEIGHT


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_synthetic_store(tmp_path_factory.mktemp("zs") / "store", names=["angry", "calm", "happy"],
                                vision=FACEAPI, frames=2, clips_per_speaker=2)


@pytest.fixture(scope="module")
def actions_run(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "actions"
    result = CliRunner().invoke(app, ["zeroshot", str(store), "--out", str(out), "--fold", "none", "--actions"])
    assert result.exit_code == 0, result.output
    return out


def test_zeroshot_actions_records_them_and_needs_fold_none(store, actions_run, tmp_path):
    config = json.loads((actions_run / "config.json").read_text())
    assert config["zeroshot"]["actions"] is True and config["heads"]["actions"] == ACTION_WEIGHT
    assert config["heads"]["class_of_emotion"] == [-1, 2, -1, -1, -1, 0, -1, -1]  # happiness, anger
    result = CliRunner().invoke(app, ["zeroshot", str(store), "--out", str(tmp_path / "zs"), "--actions"])
    assert isinstance(result.exception, ValueError) and "--fold none" in str(result.exception)
    plain = tmp_path / "plain"
    assert CliRunner().invoke(app, ["zeroshot", str(store), "--out", str(plain), "--fold", "none"]).exit_code == 0
    config = json.loads((plain / "config.json").read_text())
    assert "actions" not in config["zeroshot"] and "actions" not in config["heads"]  # as every run before


def test_without_mediapipe_an_actions_run_is_refused_in_one_line_and_explain_says_so(actions_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` now raises ImportError
    missing = "face actions needs mediapipe (not installed): pip install 'dfer[actions]'"
    with pytest.raises(MissingExtra) as raised:
        Predictor(actions_run)
    assert str(raised.value) == missing
    clip = decode_clip(HAPPY, None, frames=2)  # what explain_clip hands over, less the model's work
    assert explain_actions(clip, None, 2) == {"words": None, "unavailable": missing}


needs_mediapipe = pytest.mark.skipif(not installed("mediapipe"),
                                     reason="face actions need mediapipe (pip install 'dfer[actions]')")


@needs_mediapipe
def test_the_actions_run_answers_through_predict(actions_run, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(HAPPY), "--model", str(actions_run), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["top1"] == "happy" and record["seconds"]["actions"] > 0


@needs_mediapipe
def test_explain_names_the_smile_of_the_happy_clip(tmp_path):
    result = CliRunner().invoke(app, ["explain", str(HAPPY), "--model", "face", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "actions: lip corners pulled up (smile)" in " ".join(result.output.split())
    record = json.loads(next(tmp_path.glob("*.explain.json")).read_text())
    assert record["explain"]["actions"]["named"][0]["au"] == 12


def test_the_docs_table_is_the_code_s():
    page = (REPO / "docs" / "face-actions.md").read_text()
    for name, (au, words) in ACTIONS.items():
        assert f"| `{name}` | {f'AU{au}' if au else '—'} | {words} |" in page
