"""`dfer serve`'s API keeps the contract its own /openapi.json publishes: schemathesis (its CLI, as a user runs it)
fuzzes a real server on the loopback, the default fused pair and a single bundled run, seeded and bounded by
tests/schemathesis.toml, and finds nothing; /health describes a fused server's members; every error is one
documented `{"detail": string}`, a bug's 500 included."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from dfer.predict.ensemble import load_model
from dfer.serve.app import create_app

SETTINGS = Path(__file__).with_name("schemathesis.toml")
pytest.importorskip("schemathesis", reason="schemathesis is not installed (requirements.txt)")


@pytest.fixture(scope="module")
def voice_server(serve):
    """`dfer serve --model voice`: one bundled run."""
    with serve(load_model(["voice"])) as url:
        yield url


@pytest.mark.parametrize("server", ["fused_server", "voice_server"])
def test_the_fuzzer_finds_nothing(server, request, tmp_path):
    url = request.getfixturevalue(server)
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(SETTINGS), "--no-color", "run",
         f"{url}openapi.json"], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Tested: 3" in run.stdout and "Seed: 32" in run.stdout  # /health, /labels, /predict, with the seed
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", run.stdout).groups())
    assert generated == passed > 50, run.stdout[-3000:]


def test_health_of_a_fused_server_lists_its_members_encoders(fused_server):
    health = httpx.get(f"{fused_server}health").json()
    assert health["run"] == "voice + face" and health["encoders"] is None
    members = {Path(member["run"]).name: member for member in health["members"]}
    assert list(members) == ["voice", "face"]
    assert members["voice"]["modalities"] == "speech,acoustic" and members["face"]["modalities"] == "video"
    assert set(members["voice"]["encoders"]) == {"speech", "acoustic"} and set(members["face"]["encoders"]) == {"video"}
    assert [member["weight"] for member in health["members"]] == [1.0, 1.0]


class Broken:
    """A stand-in predictor whose description fails: a bug of the server, as /health's KeyError on a fused pair was."""

    classes = labels = ["calm"]

    def describe(self) -> dict:
        raise KeyError("encoders")


def test_an_unexpected_failure_is_the_documented_500():
    with TestClient(create_app(Broken(), max_timeline_seconds=0), raise_server_exceptions=False) as client:
        response = client.get("/health")
        assert response.status_code == 500 and response.json() == {
            "detail": "unexpected server error (KeyError); the server's log has its traceback"}
        for path in client.get("/openapi.json").json()["paths"].values():
            for operation in path.values():
                assert operation["responses"]["500"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}
