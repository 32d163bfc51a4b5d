"""What dfer answers at 7c92bdc, recorded before the streams redesign (issue 29), and the code that recomputes it.

The fixtures in tests/fixtures/acceptance/ hold, as JSON:
- bundled.json: the bundled `voice` (its run folder of then: before/voice) and `face` models and the default fused
  pair of then (`dfer predict` with no --model)
  on the 6 sample clips, and on the 6 CREMA-D recordings and 2 RAVDESS videos of ../shared/data when it is there;
- runs.json: a zero-shot run, a probe run, a stage-2 run (`dfer train`) and a stage-3 run (`dfer finetune` from it)
  on the 6 sample clips with the lite preset (manifest.csv splits them 3 train / 1 val / 2 test; every clip is its
  own class, so the figures are a record of the computation, not of skill): each run's test metrics, per-clip
  probabilities, config.json less its volatile fields, and its answers through `dfer predict` on two clips. The
  probe's config gained `tol` (and `max_iter` 20000) when the probe began fitting to its loss's minimum, and
  `balance` ("none") when a probe could weigh its classes as balanced heads do; its LBFGS count became 4 (was 5)
  when `one_thread` pinned the BLAS too. Its figures and answers were as recorded. The stage-2 and stage-3 runs'
  training settings gained `members` (1) when a run could hold several seeds' heads; nothing else changed.

Everything goes through the command line (`dfer.cli.app`), the interface the redesign keeps, so the test survives
the code moving underneath it. tests/test_acceptance.py recomputes both and compares; to record them again,
deliberately, after a change that is meant to change the answers:

    PYTHONPATH=$PWD .venv/bin/python tests/acceptance.py
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "acceptance"
SHARED = REPO.parent / "shared" / "data"
SAMPLE_CLIPS = sorted((REPO / "samples" / "cremad" / "VideoFlash").glob("*.flv"))
SHARED_CLIPS = ["cremad/AudioMP3/*.mp3", "ravdess_av/*/*.mp4"]  # globs under SHARED
# The bundled voice as it was at 7c92bdc (before its retraining with speaker adaptation, issue 30): its run folder,
# kept here, must still load and answer as it did; the pair is the default fused pair of then.
VOICE_BEFORE = FIXTURES / "before" / "voice"
MODELS = {"voice": ["--model", VOICE_BEFORE], "face": ["--model", "face"],
          "pair": ["--model", VOICE_BEFORE, "--model", "face"]}
RUNS = ("zeroshot", "probe", "heads", "finetune")
ASKED = ("1001_DFA_ANG_XX.flv", "1001_DFA_SAD_XX.flv")  # a training clip and a test clip, answered by every run
VOLATILE = {"dfer_version", "store", "init"}  # config.json keys that name the machine, the folder or the version
EXACT = {"WAR", "UAR", "macro_f1", "weighted_f1", "precision", "recall", "f1"}  # counted from argmax: no tolerance
# Probabilities, ECE and NLL. On the CPU they were recorded on, one thread reproduces them to the last of the 6
# decimals the records keep; another CPU's kernels do not (measured on a 2-core AMD EPYC with AVX-512, the records
# having been made on another machine of the pool CI draws from: up to 2.3e-4 in a probability and 4.4e-4 in an NLL,
# in 217 of 558 values, with every label, argmax and count the same). So floats are held to 1e-3: a changed weight,
# statistic or crop moves them by more, and the EXACT keys still catch any changed answer.
ATOL = 1e-3


def cli(*arguments) -> str:
    """`dfer ARGUMENTS` in this process; its stdout. Raises with the output when the command fails."""
    from dfer.cli import app

    result = CliRunner().invoke(app, [str(a) for a in arguments])
    if result.exit_code != 0:
        raise RuntimeError(f"dfer {' '.join(map(str, arguments))} exited {result.exit_code}:\n{result.output}"
                           f"\n{result.exception!r}")
    return result.stdout


@contextmanager
def one_thread() -> Iterator[None]:
    """PyTorch and the BLAS on one thread while the fixtures are computed. Measured at 7c92bdc: the faceapi
    network's probabilities move by up to 7e-5 between 1 and 2 threads, and the probe's LBFGS fit takes 6 iterations
    or 5; and `dfer train` sets 1 thread itself and leaves it set, so otherwise the count would depend on the tests
    that ran before in the same process. The BLAS scikit-learn's fit runs on took as many threads as the machine has
    cores (or OMP_NUM_THREADS), and its count moved with them too (5 on two threads, 4 on one). On one thread two
    processes agree to the last digit."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def predicted(paths: list[Path], *model: str) -> dict[str, dict]:
    """`dfer predict PATHS [--model ...] --json`: the records by file name."""
    from dfer.cli import app

    result = CliRunner().invoke(app, ["predict", *map(str, paths), *model, "--json"])
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if len(records) != len(paths):
        raise RuntimeError(f"dfer predict gave {len(records)} records for {len(paths)} files:\n{result.output}")
    return {Path(record["path"]).name: record for record in records}


def answer(record: dict) -> dict:
    """labels, probs (rounded as the records carry them) and top1; {"refused": True} for a file the model cannot
    read (an error record, or a member that abstained)."""
    if "error" in record or "abstained" in record:
        return {"refused": True}
    return {"labels": record["labels"], "probs": record["probs"], "top1": record["top1"]}


def answers(paths: list[Path], *model: str) -> dict[str, dict]:
    return {name: answer(record) for name, record in predicted(paths, *model).items()}


def shared_clips() -> list[Path]:
    return [path for pattern in SHARED_CLIPS for path in sorted(SHARED.glob(pattern))]


def bundled(paths: list[Path]) -> dict[str, dict]:
    """{file name: {model: answer}} for the bundled voice and face, each alone, and their fused pair."""
    by_model = {name: answers(paths, *option) for name, option in MODELS.items()}
    return {path.name: {name: by_model[name][path.name] for name in MODELS} for path in paths}


def fused(paths: list[Path]) -> dict[str, dict]:
    """bundled()'s answers from the fused pair alone, which carries each member's answer: a third of the work."""
    return {name: {**{member["run"]: answer(member) for member in record["members"]}, "pair": answer(record)}
            for name, record in predicted(paths, *MODELS["pair"]).items()}


def without_volatile(config):
    if isinstance(config, dict):
        return {key: without_volatile(value) for key, value in config.items() if key not in VOLATILE}
    if isinstance(config, list):
        return [without_volatile(value) for value in config]
    return config


def as_read(config: dict) -> dict:
    """A run's config with its "heads" as today's dfer reads them back: the model a run rebuilds is what must not
    change, whichever format its config.json was written in (the heads' streams became data after 7c92bdc)."""
    from dfer.runs.load import MODELS

    model = MODELS[config.get("model", "heads")](config)
    heads = model.config if isinstance(model.config, dict) else model.config.to_dict()
    return {**config, "heads": json.loads(json.dumps(heads))}


def run_record(run: Path) -> dict:
    """A run's test metrics (results.json), per-clip probabilities (predictions.csv), config and answers."""
    with (run / "predictions.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    return {
        "test": json.loads((run / "results.json").read_text())["test"],
        "predictions": {row.pop("clip_id"): {key: float(value) if key.startswith("p_") else value
                                             for key, value in row.items()} for row in rows},
        "config": as_read(without_volatile(json.loads((run / "config.json").read_text()))),
        "answers": answers([path for path in SAMPLE_CLIPS if path.name in ASKED], "--model", run),
    }


def runs(folder: Path) -> dict[str, dict]:
    """Extract the sample clips (manifest.csv) with the lite preset at 4 frames, then zero-shot, probe, train and
    fine-tune on them, in `folder`; each run's record."""
    store = folder / "store"
    cli("extract", "manifest", FIXTURES / "manifest.csv", "--out", store, "--preset", "lite", "--frames", 4)
    cli("zeroshot", store, "--out", folder / "zeroshot")
    cli("probe", store, "--out", folder / "probe")
    cli("train", store, "--out", folder / "heads", "--recipe", FIXTURES / "train.yaml")
    cli("finetune", store, "--init", folder / "heads", "--out", folder / "finetune", "--recipe",
        FIXTURES / "finetune.yaml")
    return {name: run_record(folder / name) for name in RUNS}


def differences(recorded, now, atol: float, where: str = "") -> list[str]:
    """Where `now` departs from `recorded`: floats by more than `atol` (the EXACT keys, and all else, exactly),
    one line each."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        found = [f"{where}/{key}: missing now" for key in recorded.keys() - now.keys()]
        found += [f"{where}/{key}: new" for key in now.keys() - recorded.keys()]
        for key in recorded.keys() & now.keys():
            exact = key in EXACT
            found += differences(recorded[key], now[key], 0.0 if exact else atol, f"{where}/{key}")
        return found
    if isinstance(recorded, list) and isinstance(now, list) and len(recorded) == len(now):
        return [line for index, (a, b) in enumerate(zip(recorded, now)) for line in
                differences(a, b, atol, f"{where}[{index}]")]
    if isinstance(recorded, float) and isinstance(now, (int, float)) and not isinstance(now, bool):
        close = abs(recorded - now) <= atol * (1 + 1e-9)  # 0.027786 - 0.027785 is a hair over 1e-6 in floats
        return [] if close else [f"{where}: {recorded} -> {now}"]
    return [] if recorded == now else [f"{where}: {recorded!r} -> {now!r}"]


def record() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    clips = SAMPLE_CLIPS + shared_clips()
    if not shared_clips():
        sys.exit(f"{SHARED} is absent: the fixtures need its clips too")
    with one_thread():
        write(FIXTURES / "bundled.json", bundled(clips))
        with tempfile.TemporaryDirectory() as folder:
            write(FIXTURES / "runs.json", runs(Path(folder)))


def write(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    record()
