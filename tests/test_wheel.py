"""The wheel as a user installs it: built from this checkout, pip-installed with its core dependencies only (pip's own
resolver, no --no-deps) into a fresh venv, then `dfer predict` on a sample clip with the bundled models.

Slow (minutes: the venv's packages are copied in, torch among them). The pins of requirements.txt are passed as
constraints, so the venv holds the tested versions (torch 2.14.1 lies on this project's machines' disk); the package
index must be reachable, as in CI. It prints the venv's size: docs/install.md quotes it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import dfer

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "cremad" / "VideoFlash" / "1001_DFA_HAP_XX.flv"
# what the core must not pull in (the [hf], [nemo], [tensorboard], [serve] extras, and what NeMo would bring)
NOT_CORE = {"transformers", "nemo-toolkit", "lhotse", "datasets", "wandb", "tensorboard", "peft", "fastapi",
            "facenet-pytorch", "resemblyzer", "opensmile", "mediapipe", "pandas"}

pytestmark = pytest.mark.slow


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_installs_core_only_and_predicts(tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp_path / "dist", REPO)
    wheel = tmp_path / "dist" / f"dfer-{dfer.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    for packaged in ("dfer/faces/weights/mtcnn/onet.pt", "dfer/encoders/weights/ge2e/pretrained.pt",
                     "dfer/encoders/weights/faceapi/face_expression_model.bin", "dfer/models/voice/best.safetensors",
                     "dfer/models/face/best.safetensors"):
        assert packaged in names, packaged

    # pip takes no constraint with extras (nemo_toolkit[asr]): the pins without them
    pins = [re.sub(r"\[.*?\]", "", line) for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    (tmp_path / "constraints.txt").write_text("\n".join(pins) + "\n")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "-c", tmp_path / "constraints.txt", wheel)

    installed = {line.split("==")[0].lower().replace("_", "-")
                 for line in run(python, "-m", "pip", "freeze").stdout.splitlines()}
    assert not installed & NOT_CORE, installed & NOT_CORE
    done = run(env / "bin" / "dfer", "predict", CLIP, cwd=tmp_path)  # not the checkout: the installed dfer
    assert "happy" in done.stdout and "Traceback" not in done.stderr, done.stdout + done.stderr
    size = run("du", "-sh", env).stdout.split()[0]
    print(f"core-only venv: {size}; wheel: {wheel.stat().st_size / 1e6:.1f} MB")
