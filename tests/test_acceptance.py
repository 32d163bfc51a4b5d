"""The acceptance test of the streams redesign (issue 29): the bundled models and a zero-shot, probe, stage-2 and
stage-3 run answer as they did at 7c92bdc (tests/acceptance.py says what is recorded, and how to record it again).
Probabilities, ECE and NLL to 1e-3 (acceptance.ATOL says why); labels, argmax, counts and the metrics counted from
them exactly."""

from __future__ import annotations

import json

import pytest

from acceptance import (ATOL, FIXTURES, SAMPLE_CLIPS, SHARED, as_read, differences, fused, one_thread, runs,
                        shared_clips)


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_bundled_models_answer_the_sample_clips_as_recorded():
    with one_thread():
        now = fused(SAMPLE_CLIPS)  # the pair's record carries voice's and face's own answers
    wanted = {name: answer for name, answer in recorded("bundled.json").items() if name in now}
    assert len(wanted) == len(SAMPLE_CLIPS) == 6
    assert not (found := differences(wanted, now, ATOL)), "\n".join(found)


def test_bundled_models_answer_the_shared_clips_as_recorded():
    clips = shared_clips()
    if not clips:
        pytest.skip(f"{SHARED} is absent (the shared real data is not part of a clone)")
    with one_thread():
        now = fused(clips)
    wanted = {name: answer for name, answer in recorded("bundled.json").items() if name in now}
    assert len(wanted) == len(clips) == 8
    assert not (found := differences(wanted, now, ATOL)), "\n".join(found)


def test_zeroshot_probe_train_and_finetune_runs_as_recorded(tmp_path):
    with one_thread():
        now = runs(tmp_path)
    wanted = {name: {**run, "config": as_read(run["config"])} for name, run in recorded("runs.json").items()}
    assert not (found := differences(wanted, now, ATOL)), "\n".join(found)
