"""The `dfer` command line as a newcomer meets it: help that reads cleanly, and mistakes that fail at once, in one line.

The three mistakes run as real processes with `-X importtime`, so the test sees what a user waits for: an exit code 2
and one line naming the file and the reason, with torch never imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import dfer
from dfer.cli import app
from dfer.cli.help import RECIPE
from dfer.errors import InputError

REPO = Path(__file__).resolve().parents[1]
STAGE_ORDER = ["extract", "info", "export-h5", "train", "probe", "zeroshot", "evaluate", "finetune", "predict",
               "explain", "serve", "models", "card", "params"]


def _dfer(*args: str, env: dict | None = None, importtime: bool = False) -> subprocess.CompletedProcess:
    """`python -m dfer ARGS` from this checkout, as a user runs it."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "dfer", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_commands_are_listed_in_stage_order():
    assert list(typer.main.get_command(app).commands) == STAGE_ORDER


@pytest.mark.parametrize("command", [[], *([name] for name in STAGE_ORDER)])
def test_help_has_no_type_marker_on_flags_and_describes_every_parameter(command):
    result = CliRunner().invoke(app, [*command, "-h"])
    assert result.exit_code == 0, result.output
    [usage] = [line for line in result.output.splitlines() if "Usage:" in line]
    assert "<bool>" not in result.output and "{" not in usage  # FILE..., not typer's {paths}...
    group = typer.main.get_command(app)
    for param in (group.commands[command[0]] if command else group).params:
        assert param.hidden or param.help, f"{command} {param.name} has no description"


def test_the_command_list_shows_whole_sentences():
    """The command list shows each docstring's first paragraph with its line breaks: it must be one sentence on one
    line, or the list breaks mid-sentence."""
    for name, command in typer.main.get_command(app).commands.items():
        first = command.help.strip().split("\n\n")[0]
        assert "\n" not in first and first.endswith("."), name


def test_version_and_short_help():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"dfer {dfer.__version__}"
    assert CliRunner().invoke(app, ["-h"]).output == CliRunner().invoke(app, ["--help"]).output


@pytest.mark.parametrize("mistake, reason", [("gone.mp4", "file not found"), ("empty", "no video, audio or image files"),
                                             ("text.mp4", "not a decodable media file")])
def test_predict_mistakes_fail_fast_in_one_line_without_torch(tmp_path, mistake, reason):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.mp4").write_text("a text file named like a video")
    result = _dfer("predict", str(tmp_path / mistake), importtime=True)
    assert result.returncode == 2
    message = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert len(message) == 1 and message[0].startswith(f"error: {tmp_path / mistake}: {reason}")
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "torch" not in imported and "zarr" not in imported


def test_the_old_explain_spelling_still_parses_with_a_note(tmp_path):
    result = CliRunner().invoke(app, ["explain", "voice", str(tmp_path / "gone.mp4"), "--out", str(tmp_path)])
    assert "`dfer explain RUN FILE` is deprecated; use `dfer explain FILE --model RUN`" in result.stderr
    assert isinstance(result.exception, InputError) and str(result.exception).startswith(f"{tmp_path / 'gone.mp4'}:")
    missing = CliRunner().invoke(app, ["explain", str(tmp_path / "gone.mp4"), "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "--model" in missing.output


def test_a_failed_extraction_leaves_no_lock_file(tmp_path):
    out = tmp_path / "store"
    result = _dfer("extract", "manifest", str(tmp_path / "missing.csv"), "--out", str(out))
    assert result.returncode == 2 and "missing.csv" in result.stderr
    from dfer.extract.pipeline import ExtractConfig, run

    with pytest.raises(FileNotFoundError, match="does not exist"):  # past the CLI's checks: the lock is taken first
        run(ExtractConfig(dataset="cremad", root=tmp_path / "nowhere", out=out, progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unreachable_hub_is_one_line_naming_the_spec(tmp_path):
    spec = "hf:google/siglip2-base-patch16-224"
    result = _dfer("params", "--vision", spec, "--json", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert result.returncode == 2 and not result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: vision encoder {spec}: could not get its weights from the Hugging Face hub")
    assert line.endswith("--vision /path/to/it")


# A hub whose name cannot resolve anywhere (.invalid, RFC 2606), as huggingface.co does not on a machine without
# network; the variables a user's shell may hold that would make the run offline from the start are unset.
UNRESOLVABLE = {"HF_ENDPOINT": "https://hub.dfer.invalid", "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
# `python -c TIMED SECONDS_FILE ARGS`: `dfer ARGS`, timed from the end of what `dfer extract` imports (torch and
# torchvision alone take seconds on a busy machine) to its exit, the seconds written to SECONDS_FILE.
TIMED = """import runpy, sys, time
from pathlib import Path
import dfer.extract.pipeline
seconds = Path(sys.argv.pop(1))
started = time.perf_counter()
try:
    runpy.run_module("dfer", run_name="__main__")
finally:
    seconds.write_text(str(time.perf_counter() - started))
"""


def test_a_hub_whose_name_does_not_resolve_fails_at_once_in_one_line(tmp_path):
    """`--preset base` with an empty cache: huggingface_hub retried each file 5 times, 11 lines over ~23 s before
    dfer's line; now the name is resolved once and the cache asked, well within 5 s of the command's imports."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **UNRESOLVABLE, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_CACHE": str(tmp_path / "hf/hub")}
    result = subprocess.run(
        [sys.executable, "-c", TIMED, str(tmp_path / "seconds"), "extract", "cremad", str(REPO / "samples/cremad"),
         "--out", str(tmp_path / "store"), "--preset", "base"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) <= 3, lines
    assert lines[-1].startswith("error: vision encoder google/siglip2-base-patch16-224: could not get its weights")
    assert "hub.dfer.invalid does not resolve" in lines[-1]
    assert float((tmp_path / "seconds").read_text()) < 5
    assert not (tmp_path / "store").exists()


def _settings_classes() -> dict:
    from dfer.extract.pipeline import ExtractConfig
    from dfer.finetune.config import FinetuneConfig
    from dfer.train.config import TrainConfig
    from dfer.train.probe import ProbeConfig
    from dfer.train.zeroshot import ZeroShotConfig

    return {"extract": ExtractConfig, "train": TrainConfig, "probe": ProbeConfig, "zeroshot": ZeroShotConfig,
            "finetune": FinetuneConfig}


@pytest.mark.parametrize("name", ["extract", "train", "probe", "zeroshot", "finetune"])
def test_the_recipe_defaults_the_help_shows_are_the_stage_s_own(name):
    """`[default: (from the recipe, else 16)]` is written in the option; it must say what the stage really does."""
    import dataclasses

    fields = {field.name: field.default for field in dataclasses.fields(_settings_classes()[name])}
    prefix = RECIPE.format("")
    shown = {param.name: param for param in typer.main.get_command(app).commands[name].params
             if isinstance(param.show_default, str) and param.show_default.startswith(prefix)}
    checked = 0
    for option, param in shown.items():
        if option not in fields:  # a dataset option (--face-frames), not a field of the stage's settings
            continue
        value, default = param.show_default[len(prefix):], fields[option]
        if isinstance(default, bool):
            assert value == (param.opts if default else param.secondary_opts)[0], option
        elif isinstance(default, (int, float)):
            assert float(value) == default, option
        else:
            assert value == default, option
        checked += 1
    assert checked  # at least one option of each stage is checked
