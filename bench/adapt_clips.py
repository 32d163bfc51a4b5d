"""Real clips of other corpora, answered with and without speaker adaptation (`dfer predict --adapt folder`).

    python bench/adapt_clips.py                        # the bundled models; ../shared/data is needed
    python bench/adapt_clips.py --voice runs/x/final   # another voice run in place of the bundled one

- **voice on CREMA-D's 12 clips**: `samples/cremad/VideoFlash` (speaker 1001) and `../shared/data/cremad/AudioMP3`
  (speaker 1002): each folder is one speaker, so `--adapt folder` standardises each speaker's six clips with their
  own statistics. A clip is right when the top answer is its CREMA-D emotion; `shared` counts it as `dfer evaluate`
  scores another corpus (`dfer.evaluation.shared_classes`): the top answer among the emotions the clip's corpus
  names, so the RAVDESS voice's calm and surprised, which CREMA-D lacks, are set aside.
- **the fused default and face alone on the 8 real audio-visual clips**: speaker 1001's six, and the two RAVDESS
  AV clips (each alone in its folder: a group of one, which adapts nothing).
Counts the clips named right; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dfer  # noqa: E402
from dfer.evaluation.shared_classes import shared_classes  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CREMAD = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
RAVDESS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgust",
           "08": "surprised"}


def corpus(path: str) -> dict[str, str]:
    """The emotions of a file's corpus, code -> word: CREMA-D's names hold underscores, RAVDESS's dashes."""
    return CREMAD if "_" in Path(path).stem else RAVDESS


def truth(path: str) -> str:
    """The emotion a CREMA-D or RAVDESS file name states."""
    name = Path(path).stem
    return corpus(path)[name.split("_")[2] if "_" in name else name.split("-")[2]]


def among_corpus(record: dict) -> str:
    """The record's top answer among the emotions of its clip's corpus, as `dfer evaluate` scores another corpus."""
    emotions = corpus(record["path"])
    shared = shared_classes(list(emotions), list(emotions.values()), record["labels"], record["path"])
    return shared.names[int(shared.restrict(np.asarray([record["probs"]])).argmax())]


def right(records: list[dict]) -> dict:
    answers = {Path(r["path"]).name: (r.get("top1"), truth(r["path"])) for r in records}
    shared = {Path(r["path"]).name: among_corpus(r) for r in records if "labels" in r}
    return {"right": sum(top == wanted for top, wanted in answers.values()), "of": len(answers),
            "shared": sum(shared.get(name) == wanted for name, (_, wanted) in answers.items()),
            "answers": {name: top for name, (top, _) in answers.items()}}


def av_clips() -> list[Path]:
    """The 8 real audio-visual clips, as folders: speaker 1001's six CREMA-D clips and the two RAVDESS AV clips (each
    alone in its folder)."""
    return [ROOT / "samples/cremad/VideoFlash", *sorted((SHARED / "ravdess_av").glob("Actor_*"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", default="voice")
    args = parser.parse_args()
    if not SHARED.exists():
        print(json.dumps({"skipped": f"{SHARED} is absent"}))
        return
    speech = [ROOT / "samples/cremad/VideoFlash", SHARED / "cremad/AudioMP3"]
    av = av_clips()
    voice, face, fused = dfer.load(args.voice), dfer.load("face"), dfer.load(["voice", "face"] if args.voice == "voice"
                                                                              else [args.voice, "face"])
    figures = {}
    for adapt in ("none", "folder"):
        figures[f"voice, CREMA-D 12, adapt {adapt}"] = right(voice.predict(speech, adapt=adapt))
        figures[f"fused, AV 8, adapt {adapt}"] = right(fused.predict(av, adapt=adapt))
    figures["face, AV 8"] = right(face.predict(av))
    for name, figure in figures.items():
        print(f"{name}: {figure['right']} of {figure['of']} ({figure['shared']} on the emotions of the clip's corpus)")
    print(json.dumps({"voice": args.voice, "figures": figures}))


if __name__ == "__main__":
    main()
