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
- **people, for scale**: CREMA-D's crowd raters (`summaryTable_subset.csv`), whose majority vote from the voice
  alone, the face alone and both is counted against the acted emotion as the models are; `perceived` counts a
  model's CREMA-D answers that match the crowd's vote from what the model reads (voice, face, or both).
Counts the clips named right; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dfer  # noqa: E402
from dfer.data import cremad, ravdess  # noqa: E402
from dfer.data.names import display_names  # noqa: E402
from dfer.evaluation.shared_classes import shared_classes  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CREMAD = dict(zip(cremad.CLASSES, display_names("cremad", cremad.CLASSES)))  # code -> word, as dfer shows them
ADAPTERS = {"cremad": cremad, "ravdess": ravdess}
VOTE = {code[0]: word for code, word in CREMAD.items()}  # the crowd's letters: A, D, F, H, N, S


def corpus(path: str) -> str:
    """The dataset a file's name is of: CREMA-D's names hold underscores, RAVDESS's dashes."""
    return "cremad" if "_" in Path(path).stem else "ravdess"


def truth(path: str) -> str:
    """The emotion a CREMA-D or RAVDESS file name states, read by dfer's own adapter."""
    path = Path(path)
    dataset = corpus(path)
    parsed = cremad.parse(path.stem) if dataset == "cremad" else ravdess.parse(path, Path(path.name))
    if isinstance(parsed, str):
        raise ValueError(f"{path}: {parsed}")
    # CREMA-D: (actor, label index); RAVDESS: (modality, emotion 1..8, actor)
    code = cremad.CLASSES[parsed[1]] if dataset == "cremad" else ravdess.CLASSES[parsed[1] - 1]
    return display_names(dataset, [code])[0]


def among_corpus(record: dict) -> str:
    """The record's top answer among the emotions of its clip's corpus, as `dfer evaluate` scores another corpus."""
    dataset = corpus(record["path"])
    codes = ADAPTERS[dataset].CLASSES
    shared = shared_classes(codes, display_names(dataset, codes), record["labels"], record["path"])
    return shared.names[int(shared.restrict(np.asarray([record["probs"]])).argmax())]


def crowd_votes() -> dict[str, dict[str, set[str]]]:
    """Modality ("Voice", "Face", "MultiModal") -> CREMA-D clip name -> the emotions the crowd's majority perceived
    from it (a tie, written "N:S", is both)."""
    with open(SHARED / "cremad/summaryTable_subset.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    return {modality: {row["FileName"]: {VOTE[letter] for letter in row[f"{modality}Vote"].split(":")} for row in rows}
            for modality in ("Voice", "Face", "MultiModal")}


def right(records: list[dict], perceived: dict[str, set[str]] | None = None) -> dict:
    """How many of `records` name the acted emotion; with `perceived`, how many CREMA-D ones name what the crowd
    perceived (the records' modality's vote)."""
    answers = {Path(r["path"]).name: (r.get("top1"), truth(r["path"])) for r in records}
    shared = {Path(r["path"]).name: among_corpus(r) for r in records if "labels" in r}
    figure = {"right": sum(top == wanted for top, wanted in answers.values()), "of": len(answers),
              "shared": sum(shared.get(name) == wanted for name, (_, wanted) in answers.items()),
              "answers": {name: top for name, (top, _) in answers.items()}}
    if perceived is not None:
        rated = {name: top for name, (top, _) in answers.items() if Path(name).stem in perceived}
        figure["perceived"] = sum(top in perceived[Path(name).stem] for name, top in rated.items())
        figure["rated"] = len(rated)
    return figure


def people(crowd: dict[str, dict[str, set[str]]]) -> dict:
    """The crowd's majority votes (`crowd_votes`) counted as a model's answers are: against the acted
    emotion."""
    acted = {stem: truth(stem) for stem in crowd["Voice"]}
    filmed = {stem: wanted for stem, wanted in acted.items() if stem.startswith("1001")}  # 1002's video is not here
    figures = {}
    for modality, clips in (("Voice", acted), ("Face", filmed), ("MultiModal", filmed)):
        votes = crowd[modality]
        figures[f"crowd, {modality.lower()} vote, CREMA-D {len(clips)}"] = {
            "right": sum(wanted in votes[stem] for stem, wanted in clips.items()), "of": len(clips),
            "answers": {stem: "/".join(sorted(votes[stem])) for stem in clips}}
    return figures


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
    crowd = crowd_votes()
    figures = {}
    for adapt in ("none", "folder"):
        figures[f"voice, CREMA-D 12, adapt {adapt}"] = right(voice.predict(speech, adapt=adapt), crowd["Voice"])
        figures[f"fused, AV 8, adapt {adapt}"] = right(fused.predict(av, adapt=adapt), crowd["MultiModal"])
    figures["face, AV 8"] = right(face.predict(av), crowd["Face"])
    for name, figure in figures.items():
        print(f"{name}: {figure['right']} of {figure['of']} ({figure['shared']} on the emotions of the clip's corpus;"
              f" {figure['perceived']} of its {figure['rated']} CREMA-D clips as the crowd perceived them)")
    raters = people(crowd)
    for name, figure in raters.items():
        print(f"{name}: {figure['right']} of {figure['of']}")
    figures.update(raters)
    print(json.dumps({"voice": args.voice, "figures": figures}))


if __name__ == "__main__":
    main()
