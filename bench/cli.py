"""How long the command line makes a user wait before it answers: `dfer --help`, and `dfer predict` on the three
common mistakes (a missing file, an empty folder, a text file named `.mp4`), an older commit against this checkout.

    python bench/cli.py                      # 7df34bb (before issue 20's fail-fast CLI) against the working tree
    python bench/cli.py --old abc1234 --repeats 5

The older commit is unpacked with `git archive` into a temporary folder; each run is a fresh `python -m dfer` process
with that folder (or this checkout) first on PYTHONPATH, as a user's shell runs it. The two versions alternate,
`--repeats` times, and each figure is the minimum wall time (the least disturbed run on a shared machine). Each row
also records the exit code and the last line the command printed, so a fast answer is seen to be the right one.

The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cases(folder: Path) -> dict[str, list[str]]:
    """name -> the dfer arguments, with the mistakes made in `folder`."""
    (folder / "empty").mkdir(exist_ok=True)
    (folder / "text.mp4").write_text("a text file named like a video\n")
    return {
        "help": ["--help"],
        "predict_missing_file": ["predict", str(folder / "gone.mp4")],
        "predict_empty_folder": ["predict", str(folder / "empty")],
        "predict_text_as_mp4": ["predict", str(folder / "text.mp4")],
    }


def timed(checkout: Path, arguments: list[str]) -> dict:
    """One `python -m dfer ARGUMENTS` run from `checkout`: wall seconds, exit code, its last line of output."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "COLUMNS": "200"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "dfer", *arguments], cwd=checkout, env=env, capture_output=True,
                            text=True, timeout=600)
    seconds = time.perf_counter() - started
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip(" │╭╮╰╯─")]
    return {"seconds": seconds, "exit_code": result.returncode, "last_line": lines[-1] if lines else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="7df34bb", help="the commit to compare against")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command per version; the minimum counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dfer-bench-cli-") as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.old], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        mistakes = Path(tmp) / "mistakes"
        mistakes.mkdir()
        versions = {args.old: old, "working tree": REPO}
        figures: dict[str, dict[str, dict]] = {name: {} for name in versions}
        for name, arguments in cases(mistakes).items():
            for _ in range(args.repeats):
                for version, checkout in versions.items():  # alternated, so a busy moment hits both alike
                    run = timed(checkout, arguments)
                    best = figures[version].get(name)
                    if best is None or run["seconds"] < best["seconds"]:
                        figures[version][name] = run

    print(f"{'':24} {args.old:>12} {'working tree':>14}   (minimum of {args.repeats} runs, seconds)")
    for name in figures[args.old]:
        old_run, new_run = figures[args.old][name], figures["working tree"][name]
        print(f"{name:24} {old_run['seconds']:12.2f} {new_run['seconds']:14.2f}   "
              f"exit {old_run['exit_code']} -> {new_run['exit_code']}: {new_run['last_line'][:90]}")
    print(json.dumps({"old": args.old, "repeats": args.repeats, "cpus": os.cpu_count(),
                      "load_average": os.getloadavg(),
                      "seconds": {version: {name: round(run["seconds"], 3) for name, run in runs.items()}
                                  for version, runs in figures.items()},
                      "runs": figures}))


if __name__ == "__main__":
    main()
