"""How adaptation depends on the group a clip is standardised with, in cross-validation by speaker.

    python bench/adapt_groups.py runs/exp/s2a --store runs/ravdess_speech/cache    # heads and probe, every fold

`--store` is the store the folds trained on, or another store of the same clips (the same clip ids; a copy of the
recordings through another channel, say): each fold is scored on its own test clips in it, found by clip id.

For every fold's test speakers (never a training clip), each test clip is standardised with the statistics of:
- `lone`: itself alone, i.e. the training set's statistics (a group of one adapts nothing);
- `2`, `4`, `8`: a group of that many of its speaker's test clips, the speaker's clips cut into random groups
  (seeded), shrunk toward the training set's statistics as at prediction;
- `all`: every test clip of its speaker (the protocol of `dfer evaluate --adapt speaker`);
- `one emotion`: only its speaker's clips of its own emotion, the worst case: a group whose statistics hold the
  emotion itself (e.g. a folder of one session's angry takes), so standardising removes the very signal.
The same run is scored in every row: the heads of `CV/fold*` and the probe of `CV/probe/fold*` (`dfer train`
writes it beside them). Prints a table of UAR mean +- std over the folds; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dfer.adapt.batches import GroupStatistics  # noqa: E402
from dfer.adapt.settings import run_adaptation  # noqa: E402
from dfer.adapt.store_moments import ClipMoments, speaker_groups  # noqa: E402
from dfer.evaluation.evaluate import run_test_clips  # noqa: E402
from dfer.inference.score import predict  # noqa: E402
from dfer.runs.folder import fold_runs  # noqa: E402
from dfer.runs.load import load_run  # noqa: E402
from dfer.store.reader import open_cache  # noqa: E402
from dfer.train.config import TrainConfig  # noqa: E402
from dfer.train.data import CachedClips  # noqa: E402
from dfer.train.loop import loader_for  # noqa: E402
from dfer.train.metrics import classification_metrics  # noqa: E402

GROUPINGS = ("lone", "2", "4", "8", "all", "one emotion")


def groups_of(reader, indices: list[int], grouping: str, seed: int) -> list[list[int]]:
    """The test clips `indices` cut into groups as `grouping` says (see the module docstring)."""
    speakers = speaker_groups(reader, indices)
    if grouping == "lone":
        return [[i] for i in indices]
    if grouping == "all":
        return speakers
    if grouping == "one emotion":
        labels = reader.read_all("label")
        return [[i for i in group if labels[i] == label] for group in speakers for label in
                sorted({int(labels[i]) for i in group})]
    size, rng = int(grouping), np.random.default_rng(seed)
    return [list(chunk) for group in speakers for chunk in np.array_split(rng.permutation(group),
                                                                          -(-len(group) // size))]


def score(run: Path, reader, grouping: str, seed: int) -> float:
    model, config = load_run(run)
    modalities = config["heads"]["modalities"]
    # the fold's own test clips, also in another store of the same clips (where `dfer evaluate` scores every clip)
    indices = run_test_clips(reader, config, modalities)
    if not indices:
        raise SystemExit(f"{reader.path} holds none of {run}'s test clips")
    prior = model.input_statistics()
    moments = ClipMoments(reader, tuple(prior), indices)
    statistics = GroupStatistics(moments, groups_of(reader, indices, grouping, seed), prior,
                                 run_adaptation(config)["shrink"])
    cfg = TrainConfig(batch_size=32, modalities=modalities)
    labels, probs = predict(model, loader_for(CachedClips(reader, indices, modalities, statistics), cfg),
                            torch.device("cpu"))
    return classification_metrics(labels, probs, reader.classes)["UAR"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cv", type=Path, help="a cross-validation folder of `dfer train --adapt speaker`")
    parser.add_argument("--store", type=Path, required=True, help="the folds' store, or a store of the same clips")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reader = open_cache(args.store)
    figures = {}
    for name, folder in (("heads", args.cv), ("probe", args.cv / "probe")):
        folds = [folder / fold for fold in fold_runs(folder)] or [folder]  # a single split is its own run
        for grouping in GROUPINGS:
            uar = [100 * score(run, reader, grouping, args.seed) for run in folds]
            figures.setdefault(name, {})[grouping] = {"mean": float(np.mean(uar)), "std": float(np.std(uar, ddof=1)),
                                                      "folds": [round(x, 2) for x in uar]}
    print("| group | " + " | ".join(f"{name} UAR (%)" for name in figures) + " |")
    print("|---|" + "---|" * len(figures))
    for grouping in GROUPINGS:
        print(f"| {grouping} | " + " | ".join(f"{figures[n][grouping]['mean']:.2f} ± {figures[n][grouping]['std']:.2f}"
                                            for n in figures) + " |")
    print(json.dumps({"cv": str(args.cv), "seed": args.seed, "uar": figures}))


if __name__ == "__main__":
    main()
