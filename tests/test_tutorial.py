"""docs/tutorial.md runs: its ```python blocks, in order, in one namespace, as a reader would paste them into a
notebook at the repository root. A change to the API that the tutorial does not follow fails here, not in front of
a reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(markdown: str) -> list[str]:
    return BLOCK.findall(markdown)


def test_the_blocks_are_found():
    blocks = python_blocks(TUTORIAL.read_text())
    assert len(blocks) >= 8
    assert "dfer.load('runs/demo').predict(['samples/cremad/VideoFlash/1001_DFA_HAP_XX.flv'])" in blocks[0]


def test_the_tutorial_runs(sample_made, tmp_path, monkeypatch, capsys):
    """In a folder laid out like the repository after `make demo`: the samples and recipes, and as runs/demo the
    tiny sample run the predict tests share (the demo's own takes minutes to train)."""
    demo = sample_made[1]
    for name in ("samples", "recipes"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo").symlink_to(demo)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(python_blocks(TUTORIAL.read_text()), 1):
        try:
            exec(compile(block, f"{TUTORIAL.name}, block {number}", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"{TUTORIAL.name} block {number} failed: {type(error).__name__}: {error}\n{block}")
    printed = capsys.readouterr().out
    assert "1001_DFA_HAP_XX.flv" in printed and "no-such-file.mp4: file not found" in printed
    assert (tmp_path / "why" / "1001_DFA_HAP_XX.explain.png").exists()
    assert (tmp_path / "timelines" / "1001_DFA_HAP_XX.csv").exists()
    assert (tmp_path / "runs" / "tutorial" / "best.safetensors").exists()
