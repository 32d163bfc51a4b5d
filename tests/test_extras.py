"""The extras: a command that needs an optional package that is missing fails in one line naming the `pip install`
that brings it (`dfer.extras`), before any work; training without TensorBoard still trains; every extra the code
names is one that pyproject.toml defines. A missing package is simulated by `None` in `sys.modules`, which makes its
import fail as if it were not installed."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

from dfer.cli import main
from dfer.encoders.build import FAMILIES
from dfer.errors import MissingExtra

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "cremad"
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def dfer_fails(monkeypatch, capsys, *arguments) -> str:
    """`dfer ARGUMENTS` as the console script runs it: must exit 2; its stderr."""
    monkeypatch.setattr(sys, "argv", ["dfer", *map(str, arguments)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("missing, arguments, extra", [
    ("uvicorn", ["serve"], "serve"),
    ("fastapi", ["serve", "--model", "voice"], "serve"),
    ("transformers", ["extract", "cremad", SAMPLE, "--preset", "base"], "hf"),
    ("transformers", ["extract", "cremad", SAMPLE, "--preset", "tiny"], "hf"),
    ("nemo", ["extract", "cremad", SAMPLE, "--vision", "faceapi", "--audio", "mel"], "nemo"),
])
def test_a_command_needing_a_missing_extra_fails_in_one_line(monkeypatch, capsys, tmp_path, missing, arguments,
                                                             extra):
    monkeypatch.setitem(sys.modules, missing, None)
    out = tmp_path / "out"
    if arguments[0] == "extract":
        arguments = [*arguments, "--out", out]
    err = dfer_fails(monkeypatch, capsys, *arguments)
    assert err.strip().count("\n") == 0, err
    assert missing in err and f"pip install 'dfer[{extra}]'" in err, err
    assert not (out / "fingerprint.json").exists()  # failed before any work


def test_the_python_api_raises_an_import_error_naming_the_extra(monkeypatch):
    from dfer.predict.model import to_frame

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"as_frame=True needs pandas .*pip install 'dfer\[pandas\]'") as raised:
        to_frame([])
    assert isinstance(raised.value, MissingExtra)


def test_training_without_tensorboard_writes_no_curves(monkeypatch, tmp_path):
    """TensorBoard is an extra: without it the loop's writer is None and RUN/log.csv alone has the curves."""
    from dfer.train.loop import tensorboard_writer

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert tensorboard_writer(tmp_path) is None and not (tmp_path / "tensorboard").exists()


def test_every_extra_the_code_names_is_in_pyproject():
    """Each `require(what, extra, ...)` call's extra and each encoder family's, and [all] is every other extra."""
    named = {family.needs[1] for family in FAMILIES.values() if family.needs}
    for path in (REPO / "dfer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" \
                    and isinstance(node.args[1], ast.Constant):  # the encoder builder's come from `_needs`, above
                named.add(node.args[1].value)
    assert named and named <= set(EXTRAS), named - set(EXTRAS)
    listed = EXTRAS["all"][0].removeprefix("dfer[").removesuffix("]").split(",")
    assert sorted(listed) == sorted(set(EXTRAS) - {"all"})  # [all] is every other extra
