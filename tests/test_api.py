"""The Python API (`import dfer`): cheap to import, and the same records, metrics and results as the command line
for the same input, because both call the same functions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import dfer
from dfer import api
from dfer.cli import app
from dfer.errors import InputError
from dfer.cli.predict import predict as predict_command
from dfer.testing.sample import SAMPLE, SMALL_HEADS
from dfer.store.h5 import export_h5
from dfer.testing.synthetic_store import make_synthetic_store

REPO = Path(__file__).resolve().parents[1]
CLIP = sorted((SAMPLE / "VideoFlash").glob("*.flv"))[0]


@pytest.fixture(scope="module")
def model(sample_made) -> dfer.Model:
    return dfer.load(sample_made[1])


def cli_lines(*arguments: str) -> list[dict]:
    """`dfer predict ARGUMENTS --json`'s JSON lines."""
    one = typer.Typer()
    one.command()(predict_command)
    result = CliRunner().invoke(one, [*arguments, "--json"])
    assert result.exit_code in (0, 1), result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def untimed(record: dict) -> dict:
    """A record without its stage timings, which differ from run to run."""
    return {key: value for key, value in record.items() if key != "seconds"}


def test_import_loads_no_torch_and_lists_the_api():
    code = ("import dfer, sys; assert {'load', 'open_cache', 'Model', 'api'} <= set(dir(dfer)); "
            "assert callable(dfer.api.finetune) and callable(dfer.api.extract); "
            "assert 'torch' not in sys.modules, 'torch'; print(dfer.__version__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == dfer.__version__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dfer.nothing


def test_subpackages_are_modules_that_import_and_patch_by_dotted_path(stores, tmp_path, monkeypatch):
    """`dfer.train` is the package, so `import dfer.train.run as run` and a patch by dotted path reach the code the
    stage function runs."""
    import dfer.train.run as run
    from dfer.train.run import train

    assert run.train is train and dfer.train.run is run
    assert dfer.api.load is dfer.load

    class Patched(Exception):
        pass

    def fit(*args, **kwargs):
        raise Patched

    monkeypatch.setattr("dfer.train.run.fit", fit)
    with pytest.raises(Patched):
        dfer.api.train(stores["float16"], tmp_path / "heads", fold=1, epochs=1, show=False, heads=SMALL_HEADS)


def test_predict_gives_the_cli_records(sample_made, model, tmp_path):
    """A folder holding a clip and a text file named .mp4: one record each, the text file's an error record."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(CLIP, folder)
    (folder / "text.mp4").write_text("not a video")
    expected = cli_lines(str(folder), "--model", str(sample_made[1]))
    records = model.predict(folder)
    assert [untimed(r) for r in records] == [untimed(r) for r in expected]
    assert [r["path"] for r in records if "error" in r] == [str(folder / "text.mp4")]
    (good,) = (r for r in records if "error" not in r)
    assert model.predict(CLIP)[0]["probs"] == good["probs"]  # the same clip named alone: the same answer


def test_named_bad_inputs_are_refused_before_any_file_runs(model, tmp_path):
    """As `dfer predict` refuses them (exit 2): a missing file, a text file named .mp4, an empty folder."""
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty").mkdir()
    for bad in ("gone.mp4", "text.mp4", "empty"):
        with pytest.raises(InputError, match=bad):
            model.predict([CLIP, tmp_path / bad])
        if bad != "empty":
            for method in (model.timeline, model.explain):
                with pytest.raises(InputError, match=bad):
                    method(tmp_path / bad)


def test_predict_as_frame(model, tmp_path):
    shutil.copy(CLIP, tmp_path)
    (tmp_path / "text.flv").write_text("not a video")
    frame = model.predict(tmp_path, as_frame=True)
    assert len(frame) == 2 and {"path", "top1", "error"} <= set(frame.columns)
    probs = frame.set_index("path")[[f"p_{label}" for label in model.labels]]  # (2, C)
    assert probs.loc[str(tmp_path / CLIP.name)].sum() == pytest.approx(1, abs=1e-4)
    assert probs.loc[str(tmp_path / "text.flv")].isna().all()  # the error row has no probabilities


def test_model_names_its_classes(sample_made, model):
    config = json.loads((sample_made[1] / "config.json").read_text())
    assert model.classes == config["classes"] and model.labels == config["display_names"]
    assert "happy" in repr(model) and str(sample_made[1]) in repr(model)


def test_timeline_is_the_cli_record_with_its_rows(sample_made, model, tmp_path):
    (expected,) = cli_lines(str(CLIP), "--model", str(sample_made[1]), "--timeline", str(tmp_path / "cli"),
                            "--window", "1")
    record = model.timeline(CLIP, window=1, out=tmp_path / "api")
    rows = record.pop("rows")
    assert record["windows"] == expected["windows"] == len(rows) > 1
    assert {**record, "files": None} == {**expected, "files": None}
    written = [json.loads(line) for line in Path(expected["files"]["jsonl"]).read_text().splitlines()]
    assert rows == written  # the lines of the CLI's .jsonl
    assert Path(record["files"]["jsonl"]).read_text() == Path(expected["files"]["jsonl"]).read_text()
    assert "files" not in model.timeline(CLIP, window=1)  # nothing written without `out`
    frame = model.timeline(CLIP, window=1, as_frame=True)
    assert list(frame["start"]) == [row["start"] for row in rows]


def test_explain_is_the_cli_record(sample_made, model, tmp_path):
    (expected,) = cli_lines(str(CLIP), "--model", str(sample_made[1]), "--explain", str(tmp_path / "cli"))
    record = model.explain(CLIP, out=tmp_path / "api")
    assert untimed({**record, "explain_files": None}) == untimed({**expected, "explain_files": None})
    assert Path(record["explain_files"]["png"]).exists()
    written = json.loads(Path(expected["explain_files"]["json"]).read_text())
    assert untimed(model.explain(CLIP)) == untimed(written)  # without `out`: the record the .explain.json holds


def test_one_file_methods_refuse_a_folder(model, tmp_path):
    for method in (model.timeline, model.explain):
        with pytest.raises(InputError, match="a folder"):
            method(tmp_path)


def test_evaluate_gives_the_cli_metrics_with_words(sample_made):
    store, run = sample_made
    metrics = api.evaluate(run, store=store)
    result = CliRunner().invoke(app, ["evaluate", str(run), "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == metrics
    codes = dfer.open_cache(store).classes
    assert list(metrics["per_class"]) == metrics["display_names"] != codes  # words: "angry", not "ANG"
    assert [entry["code"] for entry in metrics["per_class"].values()] == codes
    several = api.evaluate([run, run], store=store)
    assert list(several) == [str(run)] and several[str(run)] == metrics  # a run named twice is one key
    with pytest.raises(ValueError, match="--store"):
        api.evaluate(run)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    """The same synthetic clips stored with float16 and with int8 tokens, and the int8 one's HDF5 export."""
    folder = tmp_path_factory.mktemp("caches")
    stores = {dtype: make_synthetic_store(folder / dtype, token_dtype=dtype, clips_per_speaker=4, names=["ANG", "HAP",
                                                                                                       "SAD"])
              for dtype in ("float16", "int8")}
    stores["h5"] = export_h5(stores["int8"], folder / "int8.h5")
    return stores


def test_open_cache_decodes_int8_tokens_transparently(stores):
    half, codes, h5 = (dfer.open_cache(stores[key]) for key in ("float16", "int8", "h5"))
    assert codes.token_dtype == "int8" and len(codes) == len(half) == 24
    for index in range(len(half)):
        reference, decoded = half.clip(index), codes.clip(index)
        for stream in ("video/tokens", "audio/tokens"):
            if reference[stream] is None:
                assert decoded[stream] is None
                continue
            assert decoded[stream].dtype == np.float32 and decoded[stream].shape == reference[stream].shape
            spread = reference[stream].reshape(-1, reference[stream].shape[-1]).std(0)  # (D,)
            assert np.abs(decoded[stream] - reference[stream]).max() < 0.05 * spread.max()  # within a few codes
        np.testing.assert_array_equal(h5.tokens("video", index), codes.tokens("video", index))


def test_open_cache_lists_each_clip(stores):
    cache = dfer.open_cache(stores["h5"])
    clips = cache.clips()
    assert set(clips) >= {"clip_id", "label", "class", "name", "speaker", "fold", "split", "done", "has_video"}
    assert all(len(column) == len(cache) for column in clips.values())
    assert list(clips["class"][:3]) == [cache.classes[label] for label in clips["label"][:3]]
    first = cache.clip(0)
    assert first["clip_id"] == "s0/clip00" and first["speaker"] == "s0" and first["fold"] == 1
    assert isinstance(first["label"], int) and first["audio/tokens"].shape[0] < cache.layout["audio_frames"]
    assert "int8 tokens" in repr(cache) and "24 clips" in repr(cache)
    for reader in (cache, dfer.open_cache(stores["float16"])):  # a row read alone is the table's row
        table = reader.clips()
        row = {key: value for key, value in reader.clip(5).items() if not key.endswith("/tokens")}
        assert row == {key: column[5].item() for key, column in table.items()}


def test_probe_and_train_return_what_the_cli_writes(stores, tmp_path):
    store = stores["float16"]
    probed = api.probe(store, tmp_path / "probe", fold=1, show=False)
    result = CliRunner().invoke(app, ["probe", str(store), "--out", str(tmp_path / "probe-cli"), "--fold", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"] == json.loads(json.dumps(probed.runs))
    trained = api.train(store, tmp_path / "heads", fold=1, epochs=1, show=False, heads=SMALL_HEADS)
    results = json.loads((tmp_path / "heads" / "results.json").read_text())["test"]
    assert trained.runs["fold1"]["UAR"] == results["UAR"] and list(results["per_class"]) == ["ANG", "HAP", "SAD"]
