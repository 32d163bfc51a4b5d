"""Every `--json` command, run as a real process: its stdout is JSON and nothing else, so `... --json | jq` works.

A real process, not CliRunner: a progress bar, a library's log handler bound to the process's stdout at import, or
a C library writing to file descriptor 1 all land in the pipe a user would parse, and CliRunner sees none of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dfer.testing.sample import SAMPLE

REPO = Path(__file__).resolve().parents[1]
CLIP = sorted((SAMPLE / "VideoFlash").glob("*.flv"))[0]


COMMANDS = {  # name -> (arguments, with {store} {run} {root} {clip} filled in; the exit code expected)
    "info": (["info", "{store}", "--json"], 0),
    "params": (["params", "--preset", "tiny", "--json"], 0),
    "evaluate --store": (["evaluate", "{run}", "--store", "{store}", "--json"], 0),
    "evaluate --dataset --root": (["evaluate", "{run}", "--dataset", "cremad", "--root", "{root}", "--json"], 0),
    "predict": (["predict", "{mixed}", "--model", "{run}", "--json"], 1),  # 1: mixed/broken.mp4 failed
    "predict --explain": (["predict", "{mixed}", "--model", "{run}", "--json", "--explain", "{cwd}/why"], 1),
}


@pytest.fixture(scope="module")
def made(sample_made, tmp_path_factory) -> dict[str, Path]:
    """The tiny sample run (shared with test_predict), a one-clip CREMA-D folder, a folder of a clip and a broken file
    (its error is a JSON line too), and a folder to run in: `evaluate --dataset --root` extracts into ./cache, which
    must not be the repository's."""
    made = {"store": sample_made[0], "run": sample_made[1], "clip": CLIP, "cwd": tmp_path_factory.mktemp("cwd")}
    made["root"] = tmp_path_factory.mktemp("one-clip")
    (made["root"] / "VideoFlash").mkdir()
    shutil.copy(CLIP, made["root"] / "VideoFlash")
    made["mixed"] = tmp_path_factory.mktemp("mixed")
    shutil.copy(CLIP, made["mixed"])
    (made["mixed"] / "broken.mp4").write_text("not a video")
    return made


# Each is a process that imports torch, transformers and NeMo (~15 s of CPU): the default suite runs the ones with the
# most to get wrong (the predict lines, a bad file's error line), CI runs all of them (evaluate's extraction progress too).
DEFAULT_SUITE = ("info", "predict")


@pytest.mark.parametrize("name", [n if n in DEFAULT_SUITE else pytest.param(n, marks=pytest.mark.slow)
                                  for n in COMMANDS])
def test_json_stdout_is_only_json(made, name):
    arguments, exit_code = COMMANDS[name]
    command = [sys.executable, "-m", "dfer", *(a.format(**made) for a in arguments)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}  # this checkout's dfer, whatever the cwd; toy sizes gain nothing from threads
    result = subprocess.run(command, cwd=made["cwd"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == exit_code, result.stderr[-3000:]
    if name.startswith("predict"):  # JSON lines, one per file as it finishes
        records = [json.loads(line) for line in result.stdout.splitlines()]
        expected = {str(made["mixed"] / "broken.mp4"): True, str(made["mixed"] / CLIP.name): False}
        assert {r["path"]: "error" in r for r in records} == expected, records
        assert all(("explain" in r) == name.endswith("--explain") for r in records if "error" not in r)
    else:
        assert isinstance(json.loads(result.stdout), dict)
    if name == "evaluate --dataset --root":  # it extracted first: the progress bar went to stderr, not away
        assert "extract" in result.stderr and json.loads(result.stdout)["n"] == 1
