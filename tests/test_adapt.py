"""Adaptation statistics (dfer.adapt): a group's statistics equal numpy's, small groups shrink toward the training
set's, a lone clip keeps them, saved statistics come back exactly, and training / probe / evaluate adapt per
speaker on a synthetic store whose speakers each shift every token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dfer.adapt.batches import GroupStatistics, MixedStatistics, prior_of
from dfer.adapt.moments import Moments, row_moments
from dfer.adapt.saved import load_statistics, merged, save_statistics
from dfer.adapt.store_moments import ClipMoments, speaker_groups
from dfer.evaluation.evaluate import evaluate_run
from dfer.store.reader import open_cache
from dfer.testing.sample import SMALL_HEADS
from dfer.testing.synthetic_store import make_synthetic_store
from dfer.train.config import make_config
from dfer.train.probe import ProbeConfig, probe
from dfer.train.run import train


def test_a_groups_statistics_equal_numpys():
    rng = np.random.default_rng(0)
    clips = [rng.normal(3.0, 2.0, size=(n, 5)) for n in (7, 1, 12)]  # (M_i, D) valid tokens per clip
    group = merged(*({"s": Moments.of_tokens(x)} for x in clips))["s"]
    tokens = np.concatenate(clips)
    np.testing.assert_allclose(group.mean, tokens.mean(0), rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(group.var), tokens.std(0), rtol=1e-10)
    assert (group.count, group.clips) == (20, 3)
    mean, std = group.standardiser((np.zeros(5), np.ones(5)), shrink=0.0)  # no prior weight: the group's own
    np.testing.assert_allclose(mean, tokens.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, tokens.std(0), rtol=1e-10)


def test_a_small_group_is_a_weighted_mixture_with_the_training_sets_statistics():
    rng = np.random.default_rng(1)
    clips = [rng.normal(1.0, 0.5, size=(9, 3)) for _ in range(2)]
    group = Moments.of_tokens(clips[0]) + Moments.of_tokens(clips[1])
    prior = (np.full(3, -2.0), np.full(3, 3.0))
    mean, std = group.standardiser(prior, shrink=2.0)  # 2 clips against a prior of 2: half each
    # the prior as a two-point sample with its mean and std, weighted half against the group's tokens
    points = np.stack([prior[0] - prior[1], prior[0] + prior[1]])  # (2, D)
    tokens = np.concatenate(clips)  # (18, D)
    weights = np.concatenate([np.full(18, 0.5 / 18), np.full(2, 0.5 / 2)])
    values = np.concatenate([tokens, points])
    expected = np.average(values, axis=0, weights=weights)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    np.testing.assert_allclose(std, np.sqrt(np.average((values - expected) ** 2, axis=0, weights=weights)), rtol=1e-10)


def test_a_group_of_one_clip_keeps_the_training_sets_statistics():
    prior = (np.arange(4.0), np.full(4, 2.0))
    mean, std = Moments.of_tokens(np.ones((30, 4))).standardiser(prior, shrink=2.0)
    np.testing.assert_array_equal(mean, prior[0])
    np.testing.assert_array_equal(std, prior[1])
    assert Moments.of_tokens(np.ones((0, 4))).clips == 0  # a clip without the stream counts as none


def test_saved_statistics_come_back_exactly_and_a_bad_file_is_named(tmp_path):
    rng = np.random.default_rng(2)
    moments = {"audio-x": Moments.of_tokens(rng.normal(size=(11, 6))) + Moments.of_tokens(rng.normal(size=(4, 6)))}
    path = save_statistics(tmp_path / "me.stats", moments, {"audio-x": {"id": "ge2e"}})
    back = load_statistics(path)["audio-x"]
    assert (back.count, back.clips) == (15.0, 2)
    np.testing.assert_array_equal(back.total, moments["audio-x"].total)
    np.testing.assert_array_equal(back.squares, moments["audio-x"].squares)
    (tmp_path / "bad.stats").write_text("not numpy")
    with pytest.raises(ValueError, match="bad.stats: not a dfer statistics file"):
        load_statistics(tmp_path / "bad.stats")


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> Path:
    """Speakers whose tokens are each shifted far more than the class signal: without adaptation the shift reads
    as emotion."""
    return make_synthetic_store(tmp_path_factory.mktemp("shifted") / "store", speaker_shift=4.0, signal=1.0)


def test_store_moments_are_the_tokens_the_heads_read(shifted):
    reader = open_cache(shifted)
    rows = [0, 5, 6, 8]  # clip 5 has no video, 6 no audio
    moments = ClipMoments(reader, ("audio", "video"), rows).of(rows)
    for shape in reader.streams:
        stream = shape.name
        one = merged(*(row_moments({name: reader.read(name, i) for name in
                                    (f"has_{stream}", "audio/length", "video/face_found")} |
                                   {f"{stream}/tokens": reader.tokens(stream, i)}, (shape,)) for i in rows))[stream]
        np.testing.assert_allclose(moments[stream].total, one.total, rtol=1e-12)
        assert moments[stream].clips == one.clips == 3


def test_speaker_groups_keep_a_clip_without_a_speaker_alone(tmp_path):
    reader = open_cache(make_synthetic_store(tmp_path / "store", speakers=2, clips_per_speaker=3, speaker_ids=False))
    assert speaker_groups(reader, range(6)) == [[i] for i in range(6)]
    with pytest.raises(ValueError, match="no speaker ids|have none"):
        train(reader.path, tmp_path / "run", make_config(None, epochs=1, fold="1", adapt="speaker",
                                                         heads=SMALL_HEADS), show=False)


def test_held_out_speakers_are_standardised_with_their_own_clips_only(shifted):
    reader = open_cache(shifted)
    test, training = list(range(0, 12)), list(range(12, 48))  # speaker s0 held out
    moments = ClipMoments(reader, ("audio",), test + training)
    prior = prior_of(moments.of(training))
    table = GroupStatistics(moments, speaker_groups(reader, test), prior, shrink=2.0).table
    own = ClipMoments(reader, ("audio",), test).of(test)["audio"].standardiser(prior["audio"], 2.0)
    for row in test:
        np.testing.assert_array_equal(table[row]["audio"][0], own[0])
    mixed = MixedStatistics(moments, speaker_groups(reader, training), prior, 2.0, lone=1.0)
    assert mixed.draw(12) == [12]  # lone share 1: every training clip a lone clip
    torch.manual_seed(0)
    drawn = MixedStatistics(moments, speaker_groups(reader, training), prior, 2.0, lone=0.0).draw(12)
    assert drawn[0] == 12 and len(drawn) >= 2 and all(12 <= r < 24 for r in drawn)  # its own speaker's clips


def test_adapted_heads_and_probe_beat_unadapted_ones_when_speakers_shift_and_evaluate_agrees(shifted, tmp_path):
    settings = dict(epochs=12, batch_size=16, lr=3e-3, patience=12, heads=SMALL_HEADS, fold="1", modalities="audio")
    plain = train(shifted, tmp_path / "plain", make_config(None, **settings), show=False).runs["fold1"]
    adapted_run = tmp_path / "adapted"
    adapted = train(shifted, adapted_run, make_config(None, adapt="speaker", **settings), show=False)
    scores = adapted.runs["fold1"]
    assert scores["UAR"] > plain["UAR"] + 0.1
    probes = {mode: probe(shifted, tmp_path / f"probe-{mode}", ProbeConfig(modalities="audio", fold="1", adapt=mode),
                          show=False).runs["fold1"]["UAR"] for mode in ("none", "speaker")}
    assert probes["speaker"] > probes["none"] + 0.1
    # dfer evaluate reproduces the run's own test figures with the same protocol, and states it
    again = evaluate_run(adapted_run, shifted, adapt="speaker")
    assert (again["UAR"], again["confusion"]) == (scores["UAR"], scores["confusion"])
    assert again["protocol"].startswith("adapted per speaker")
    lone = evaluate_run(adapted_run, shifted)
    assert lone["protocol"].startswith("unadapted")
    assert lone["n"] == scores["n"]


def test_serve_sessions_are_bounded_in_count_and_age_and_whole_under_threads():
    from concurrent.futures import ThreadPoolExecutor

    from dfer.adapt.sessions import SessionStatistics

    now = [0.0]
    sessions = SessionStatistics(max_sessions=3, max_age=10.0, clock=lambda: now[0])
    one = {"audio-x": Moments.of_tokens(np.ones((4, 2)))}
    for name in "abcd":
        sessions.add(name, one)
    assert len(sessions) == 3 and "a" not in sessions  # the least recently used went first
    sessions.add("b", one)  # b is the most recent now: c goes next
    sessions.add("e", one)
    assert "c" not in sessions and "b" in sessions
    assert sessions.add("b", one)["audio-x"].clips == 3  # a recording counts in its own session
    now[0] = 11.0
    sessions.add("f", one)
    assert len(sessions) == 1 and "b" not in sessions  # unused for longer than max_age
    many = SessionStatistics()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: many.add(f"s{i % 4}", one), range(400)))
    assert all(many.add(f"s{i}", {})["audio-x"].clips == 100 for i in range(4))  # no update lost


def test_evaluate_refuses_a_dataset_without_speakers_before_extracting_it(tmp_path):
    from dfer import api

    clips = sorted((Path(__file__).resolve().parents[1] / "samples/cremad/VideoFlash").glob("*.flv"))[:2]
    manifest = tmp_path / "clips.csv"
    manifest.write_text("path,label,speaker,split\n" + "".join(f"{clip},angry,,test\n" for clip in clips))
    with pytest.raises(ValueError, match="clips.csv: --adapt speaker needs speaker ids"):
        api.evaluate("voice", dataset="manifest", root=manifest, adapt="speaker")
