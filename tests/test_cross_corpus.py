"""`dfer evaluate` on another corpus's store: scored on the emotions both name (`dfer.evaluation.shared_classes`)."""

from __future__ import annotations

import numpy as np
import pytest

from dfer.evaluation.evaluate import evaluate_run
from dfer.evaluation.shared_classes import shared_classes
from dfer.testing.sample import SMALL_HEADS
from dfer.testing.synthetic_store import make_synthetic_store
from dfer.train.config import make_config
from dfer.train.predictions import read_predictions
from dfer.train.run import train


def test_the_run_is_read_on_the_emotions_both_name_renormalised():
    # a RAVDESS-like run of four classes read on a CREMA-D-like store of three, one of which the run lacks
    shared = shared_classes(["HAP", "NEU", "ANG"], ["happy", "neutral", "angry"], ["neutral", "calm", "happy", "sad"],
                            "cremad-store")
    assert shared.columns == [2, 0, -1] and shared.codes == ["HAP", "NEU"] and shared.names == ["happy", "neutral"]
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25]])  # (3 clips, 4 run classes)
    rows, labels, kept = shared.scored([7, 8, 9], np.array([1, 2, 0]), probs)  # clip 8 is angry: left out
    assert rows == [7, 9] and labels.tolist() == [1, 0]
    np.testing.assert_allclose(kept, [[0.3 / 0.4, 0.1 / 0.4], [0.5, 0.5]])  # (happy, neutral), each summing to 1
    assert "calm, sad set aside" in shared.describe() and "angry clips left out" in shared.describe()
    with pytest.raises(ValueError, match="cremad-store: none of its clips"):
        shared.scored([8], np.array([2]), probs[:1])
    with pytest.raises(ValueError, match="other: its classes .* share no emotion"):
        shared_classes(["x"], ["contempt"], ["neutral", "calm"], "other")


def test_evaluate_scores_a_store_of_other_classes_as_the_runs_own_restricted(tmp_path):
    """The same clips, once under the run's class names and once under another corpus's spellings (anger, happiness)
    with a class the run lacks (surprise): the second evaluation is the first's clips of the shared emotions, their
    probabilities restricted and renormalised."""
    own = ["angry", "happy", "sad"]
    store = make_synthetic_store(tmp_path / "train", names=own)
    run = tmp_path / "run"
    train(store, run, make_config(None, epochs=1, fold="none", heads=SMALL_HEADS, modalities="audio"), show=False)
    same = make_synthetic_store(tmp_path / "same", names=own)
    other = make_synthetic_store(tmp_path / "other", names=["anger", "happiness", "surprise"])
    before = evaluate_run(run, same, out=tmp_path / "same-eval")
    after = evaluate_run(run, other, out=tmp_path / "other-eval")
    assert "cross-corpus" not in before["protocol"]
    assert after["protocol"].endswith("cross-corpus: scored on the 2 emotions both name, the run's probabilities "
                                      "renormalised over them (sad set aside); the store's surprise clips left out")
    assert after["display_names"] == ["anger", "happiness"]
    full, restricted = (read_predictions(folder / "predictions.csv") for folder in (tmp_path / "same-eval",
                                                                                      tmp_path / "other-eval"))
    keep = full.labels < 2  # (n,) angry and happy clips
    assert restricted.clip_ids == [clip for clip, kept in zip(full.clip_ids, keep) if kept]
    assert restricted.labels.tolist() == full.labels[keep].tolist()
    expected = full.probs[keep][:, :2] / full.probs[keep][:, :2].sum(axis=1, keepdims=True)  # (m, 2)
    np.testing.assert_allclose(restricted.probs, expected, rtol=1e-6)
    assert after["n"] == int(keep.sum()) < before["n"]
