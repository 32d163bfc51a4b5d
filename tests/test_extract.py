"""Stage 1 end to end on generated clips: bad inputs, resume after kill -9, two ranks, the lock, few files,
fingerprints, `info`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from dfer.cli import app
from dfer.extract.pipeline import ExtractConfig, face_settings, run
from dfer.faces.settings import LEGACY_FACES, FaceSettings
from dfer.store.clip_store import FILES_FIXED, FILES_PER_CLIP, ClipStore, StoreLocked
from dfer.store.fingerprint import FingerprintMismatch
from dfer.store.reader import open_cache
from dfer.testing.ranks import torchrun
from dfer.testing.synth import write_audio, write_clip

REPO = Path(__file__).resolve().parents[1]


def _manifest(folder: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    csv = folder / "manifest.csv"
    csv.write_text("path,label,speaker,split\n" + "".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    return csv


@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory) -> Path:
    """Eight small generated clips: AV, one video-only, one audio-only, two speakers, two classes."""
    folder = tmp_path_factory.mktemp("good")
    rows = []
    for i in range(6):
        write_clip(folder / f"clip{i}.mp4", seconds=1.0 + 0.2 * i, tone_hz=300 + 50 * i)
        rows.append((f"clip{i}.mp4", ["calm", "angry"][i % 2], f"s{i % 2}", "train" if i < 4 else "test"))
    write_clip(folder / "silent.mp4", seconds=1.0, audio=False)
    rows.append(("silent.mp4", "calm", "s0", "val"))
    write_audio(folder / "voice.flac", seconds=1.5)
    rows.append(("voice.flac", "angry", "s1", "val"))
    return _manifest(folder, rows)


def _config(root: Path, out: Path, **overrides) -> ExtractConfig:
    settings = dict(dataset="manifest", root=root, out=out, preset="tiny", frames=4, batch=3, progress=False)
    settings.update(overrides)
    return ExtractConfig(**settings)


@pytest.fixture(scope="module")
def reference_store(good_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "store"
    summary = run(_config(good_dataset, out))
    assert (summary.done, summary.failures) == (8, [])
    return out


def assert_stores_equal(a: Path, b: Path) -> None:
    """Metadata exactly; tokens up to float16 rounding (batch composition may differ between runs)."""
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert dict(ga.attrs) == dict(gb.attrs)
    names = sorted(k for k, v in ga.members(max_depth=None) if isinstance(v, zarr.Array))
    assert names == sorted(k for k, v in gb.members(max_depth=None) if isinstance(v, zarr.Array))
    for name in names:
        x, y = ga[name][:], gb[name][:]
        if name.endswith("tokens"):
            np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), rtol=1e-2, atol=1e-2, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_store_contents(reference_store):
    store = ClipStore.open(reference_store, mode="r")
    ids = store.clip_ids
    has_video, has_audio = store.array("has_video")[:], store.array("has_audio")[:]
    silent, voice = ids.index("silent"), ids.index("voice")
    assert not has_audio[silent] and has_video[silent]
    assert "no audio stream" in str(store.array("note")[silent])
    assert store.array("audio/length")[silent] == 0
    assert has_audio[voice] and not has_video[voice]
    assert not store.array("video/face_found")[voice].any()
    assert not store.array("video/tokens")[voice].any()  # audio-only: no face tokens, masked downstream
    # 80 ms encoder frames over the audio span
    clip0 = ids.index("clip0")
    assert abs(store.array("audio/length")[clip0] - 1.0 / 0.08) <= 2
    assert store.array("audio/num_samples")[clip0] == pytest.approx(16000, abs=160)
    times = store.array("video/frame_time")[clip0]
    assert np.all(np.diff(times) > 0) and times[-1] <= 1.0
    assert store.array("video/tokens")[clip0].std() > 0
    assert store.array("video/faces").shape[1:3] == (4, 3)
    assert [store.array("split")[i] for i in range(len(ids))].count("val") == 2


def test_bad_inputs_fail_alone(good_dataset, tmp_path):
    folder = good_dataset.parent
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is not a video\n")
    whole = (folder / "clip5.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(whole[: len(whole) // 3])
    write_clip(tmp_path / "vidéo émotion.mp4", seconds=1.0)
    unreadable = tmp_path / "locked.mp4"
    unreadable.write_bytes(whole)
    unreadable.chmod(0)
    write_clip(tmp_path / "ok.mp4", seconds=1.0)
    rows = [(name, "calm", "s0", "train") for name in
            ["empty.mp4", "notes.mp4", "truncated.mp4", "vidéo émotion.mp4", "locked.mp4", "ok.mp4"]]
    summary = run(_config(_manifest(tmp_path, rows), tmp_path / "store"))
    failed = dict(summary.failures)
    assert {"empty", "notes", "ok", "vidéo émotion"} & set(failed) == {"empty", "notes"}
    assert "empty.mp4" in failed["empty"] and "notes.mp4" in failed["notes"]
    if os.geteuid() != 0:  # root reads any file, so the permission case only fails for other users
        assert "locked.mp4" in failed["locked"]
    store = ClipStore.open(tmp_path / "store", mode="r")
    done = dict(zip(store.clip_ids, store.array("done")[:]))
    assert done["ok"] and done["vidéo émotion"]
    assert not done["truncated"]  # its index (moov) was in the two thirds cut off: nothing in it can be decoded
    assert failed["truncated"].endswith("truncated.mp4: not a decodable media file (Invalid data found when processing "
                                        "input)")


def test_fingerprint_mismatch_names_the_field(reference_store, good_dataset):
    with pytest.raises(FingerprintMismatch, match="frames"):
        run(_config(good_dataset, reference_store, frames=8))
    with pytest.raises(FingerprintMismatch, match="vision.id"):
        run(_config(good_dataset, reference_store, vision="random:small"))


def test_a_store_from_before_face_settings_still_opens_resumes_and_keeps_its_fingerprint(reference_store,
                                                                                         good_dataset, tmp_path):
    """A store made before issue 21 records neither `face_detect` nor `frame_short_side`: it reads as the full
    pyramid on full-size frames, re-running its command resumes it without a fingerprint error, and asking for the
    new detection on it is refused naming the field."""
    old = tmp_path / "old"
    shutil.copytree(reference_store, old)
    meta = json.loads((old / "zarr.json").read_text())
    assert meta["attributes"]["fingerprint"]["face_detect"]["method"] == "large-first"  # what new stores record
    for key in ("face_detect", "frame_short_side"):
        del meta["attributes"]["fingerprint"][key]
    (old / "zarr.json").write_text(json.dumps(meta))
    assert FaceSettings.of(open_cache(old).fingerprint) == LEGACY_FACES
    assert face_settings(_config(good_dataset, old)) == LEGACY_FACES
    summary = run(_config(good_dataset, old))
    assert (summary.done, summary.failures) == (8, [])
    assert "face_detect" not in open_cache(old).fingerprint
    with pytest.raises(FingerprintMismatch, match="face_detect"):
        run(_config(good_dataset, old, face_detect="large-first"))


def test_a_store_from_before_the_shrink_was_recorded_resumes_shrinking_bilinear(reference_store, good_dataset,
                                                                                   tmp_path):
    """A store made with large-first before `shrink` was recorded shrank its frames bilinear: it reads so, resumes
    without a fingerprint error and keeps its record; asking for today's settings on it is refused naming the field."""
    old = tmp_path / "old"
    shutil.copytree(reference_store, old)
    meta = json.loads((old / "zarr.json").read_text())
    assert meta["attributes"]["fingerprint"]["face_detect"].pop("shrink") == "area"  # what new stores record
    (old / "zarr.json").write_text(json.dumps(meta))
    assert face_settings(_config(good_dataset, old)).detect.shrink == "bilinear"
    summary = run(_config(good_dataset, old))
    assert (summary.done, summary.failures) == (8, [])
    assert "shrink" not in open_cache(old).fingerprint["face_detect"]
    with pytest.raises(FingerprintMismatch, match="face_detect.shrink"):
        run(_config(good_dataset, old, face_detect="large-first"))


def test_evaluating_a_run_on_a_folder_extracts_with_its_stores_exact_face_settings(reference_store, good_dataset,
                                                                                      tmp_path):
    """`dfer evaluate --root` extracts a folder as the run's store was made: a run from a store of one large-first
    pass, shrinking bilinear (settings no name stands for today), gets those, not today's `large-first`. Exact
    settings are a FaceSettings, which no recipe can give."""
    from dfer.evaluation.raw_folder import extract_like_run

    fingerprint = open_cache(reference_store).fingerprint
    fingerprint["face_detect"] = {"method": "large-first", "detect_size": 360, "min_face": 20, "large_face": 8}
    store = extract_like_run({"fingerprint": fingerprint, "dataset": "manifest"}, "manifest", good_dataset,
                             tmp_path / "eval")
    assert open_cache(store).fingerprint["face_detect"] == fingerprint["face_detect"]
    with pytest.raises(ValueError, match="a recipe names its settings: face_detect"):  # e.g. `faces:` in a recipe
        _config(good_dataset, tmp_path / "other", faces=fingerprint["face_detect"])


def test_other_listing_is_refused(reference_store, good_dataset):
    with pytest.raises(ValueError, match="--limit"):
        run(_config(good_dataset, reference_store, limit=3))


def test_rerun_is_a_no_op(reference_store, good_dataset, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in reference_store.rglob("*") if p.is_file()}
    summary = run(_config(good_dataset, reference_store))
    assert summary.done == 8
    after = {p: p.stat().st_mtime_ns for p in reference_store.rglob("*") if p.is_file()}
    assert before == after


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dfer", *args]


@pytest.mark.slow  # several processes (CI runs the slow tests after the default suite)
def test_resume_after_kill_equals_clean_run(reference_store, good_dataset, tmp_path):
    out = tmp_path / "store"
    args = ["extract", "manifest", str(good_dataset), "--out", str(out), "--preset", "tiny", "--frames", "4",
            "--batch", "1"]
    process = subprocess.Popen(_cli(*args), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill -9 once some, but not all, clips are done
        if (out / "zarr.json").exists():
            try:
                if zarr.open_group(str(out), mode="r")["done"][:].sum() >= 2:
                    break
            except Exception:  # the store is still being created
                pass
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = int(zarr.open_group(str(out), mode="r")["done"][:].sum())
    assert 2 <= partial < 8, "the kill should land mid-run"
    assert partial % ClipStore.open(out, mode="r").shard_clips == 0  # whole shards (of 3) or nothing of one
    result = subprocess.run(_cli(*args[:-2], "--batch", "3"), cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert_stores_equal(reference_store, out)


def test_store_holds_few_files_in_whole_shards(reference_store):
    files = [file for file in reference_store.rglob("*") if file.is_file()]
    assert len(files) <= FILES_FIXED + FILES_PER_CLIP * 8
    store = ClipStore.open(reference_store, mode="r")
    assert 1 < store.shard_clips < 8  # 8 clips: 3 shards of <= 3, a file each per array
    assert sorted(file.name for file in (reference_store / "done/c").iterdir()) == ["0", "1", "2"]
    assert not (reference_store.parent / "store.lock").exists()  # the lock is removed when the extraction ends


def test_a_killed_runs_temporary_file_is_removed(reference_store, good_dataset, tmp_path):
    out = tmp_path / "store"
    shutil.copytree(reference_store, out)
    torn = out / "video/tokens/c/1/0/0.5f0e.partial"  # what zarr leaves when killed while replacing a shard
    torn.write_bytes(b"half a shard")
    assert run(_config(good_dataset, out)).done == 8
    assert not torn.exists()


_HOLD_LOCK = """
import sys, time
from dfer.store.clip_store import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow  # two processes; CI runs it
def test_a_second_extraction_is_refused_while_one_runs(good_dataset, tmp_path):
    out = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(StoreLocked, match=f"{out}: another extraction is writing this store"):
            run(_config(good_dataset, out))
        second = subprocess.run(_cli("extract", "manifest", str(good_dataset), "--out", str(out)), cwd=REPO,
                                capture_output=True, text=True)
        assert second.returncode == 2 and "another extraction is writing this store" in second.stderr
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: the lock goes with the process, its file stays
        holder.wait()
    assert (tmp_path / "store.lock").exists()
    assert run(_config(good_dataset, out, limit=2)).done == 2  # a stale lock file does not block a re-run


@pytest.mark.slow  # several processes (CI runs the slow tests after the default suite)
def test_two_ranks_equal_one(reference_store, good_dataset, tmp_path):
    out = tmp_path / "store"
    torchrun(["extract", "manifest", good_dataset, "--out", out, "--preset", "tiny", "--frames", "4", "--batch", "3"])
    assert_stores_equal(reference_store, out)


def test_info_json(reference_store):
    result = CliRunner().invoke(app, ["info", str(reference_store), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    for key in ["clips", "done", "failed", "classes", "class_counts", "face_found_ratio", "fingerprint", "arrays",
                "failures", "bytes_on_disk", "files_on_disk", "shard_clips"]:
        assert key in facts
    assert (facts["clips"], facts["done"], facts["failed"]) == (8, 8, 0)
    assert facts["classes"] == ["calm", "angry"] and facts["class_counts"] == {"calm": 4, "angry": 4}
    assert facts["arrays"]["video/tokens"]["dtype"] == "float16"
    assert facts["fingerprint"]["vision"]["id"] == "random:tiny"
    assert facts["bytes_on_disk"] > 0


def test_extract_exit_code_lists_failures(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    write_clip(tmp_path / "ok.mp4", seconds=1.0)
    csv = _manifest(tmp_path, [("empty.mp4", "a", "s", "train"), ("ok.mp4", "b", "s", "test")])
    result = CliRunner().invoke(app, ["extract", "manifest", str(csv), "--out", str(tmp_path / "s"), "--preset", "tiny",
                                      "--frames", "2"])
    assert result.exit_code == 1
    assert "empty.mp4" in result.output and "1/2 clips done" in result.output
