"""How far each speaker's own statistics lie from a run's training-set statistics, in the run's std units.

    python bench/speaker_offsets.py --store runs/ravdess_speech/acoustic-cache     # the bundled voice's speakers
    python bench/speaker_offsets.py --store runs/ravdess_speech/acoustic-cache --clips 6   # groups of six of them
    python bench/speaker_offsets.py --folder samples/cremad/VideoFlash --folder ../shared/data/cremad/AudioMP3

Adaptation (`docs/adapt.md`) standardises a speaker's clips with their own statistics, a group of n clips shrunk
toward the training set's with weight n / (n + 2). How much of a shift that leaves depends on how far the group lies
from the training set's statistics, so this measures it for each stream the run standardises: the rms over
dimensions of the group's mean offset, (group mean - training mean) / training std, and of the log ratio of its std
to the training std. A store's speakers are grouped by their speaker ids (all of their clips, or with `--clips N`
each speaker's clips cut into random groups of N, seeded: a small group's offset holds its clips' noise too); a
folder is one group (its files, as `dfer predict FOLDER --adapt together` reads them). No label is read. The last
line is one JSON object.
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
from dfer.adapt.moments import Moments, STD_FLOOR  # noqa: E402
from dfer.adapt.store_moments import ClipMoments  # noqa: E402
from dfer.predict.adapted import predict_adapted  # noqa: E402
from dfer.store.reader import open_cache  # noqa: E402
from adapt_groups import groups_of  # noqa: E402  bench/adapt_groups.py: a speaker's clips in random groups


def offsets(group: Moments, prior: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """The rms over dimensions of a group's mean offset and log std ratio, in the prior's std units."""
    mean, std = (np.asarray(x, np.float64) for x in prior)
    std = np.maximum(std, STD_FLOOR)
    return {"mean": float(np.sqrt(np.mean(np.square((group.mean - mean) / std)))),
            "log_std": float(np.sqrt(np.mean(np.square(np.log(np.maximum(np.sqrt(group.var), STD_FLOOR) / std)))))}


def store_speakers(store: Path, prior: dict, clips: int | None, seed: int = 0) -> dict[str, dict]:
    """stream -> the offsets of the store's speakers (or of groups of `clips` of a speaker's clips), summarised
    over the groups (mean and largest)."""
    reader = open_cache(store)
    rows = list(range(len(reader.read_all("label"))))
    moments = ClipMoments(reader, tuple(prior), rows)
    groups = [group for group in groups_of(reader, rows, str(clips) if clips else "all", seed) if len(group) > 1]
    summary = {}
    for stream in prior:
        found = [offsets(moments.of(group)[stream], prior[stream]) for group in groups]
        summary[stream] = {key: {"mean": float(np.mean([f[key] for f in found])),
                                 "largest": float(np.max([f[key] for f in found]))} for key in ("mean", "log_std")}
        summary[stream]["groups"] = len(groups)
    return summary


def folder_group(predictor, folder: Path) -> dict[str, dict]:
    """stream -> the offsets of one folder's media files as one group, found, read and summed as `dfer predict
    FOLDER --adapt together` does (`predict_adapted`); a file it cannot read is named and left out."""
    kept = []
    for record in predict_adapted(predictor, [folder], "together", keep=kept.append):
        if "error" in record:
            print(f"{record['path']}: {record['error']}", file=sys.stderr)
    if not kept or not kept[0]:
        raise SystemExit(f"{folder}: no media file dfer could read, so no group to measure")
    streams = {key: stream for stream, key in predictor.adapt_keys.items()}
    return {streams[key]: {**offsets(m, predictor.prior[streams[key]]), "clips": m.clips} for key, m in kept[0].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="voice", help="a run, or a bundled model's name")
    parser.add_argument("--store", type=Path, action="append", default=[], help="a store whose speakers to measure")
    parser.add_argument("--folder", type=Path, action="append", default=[], help="a folder of one speaker's files")
    parser.add_argument("--clips", type=int, help="a store's speakers cut into groups of this many clips")
    args = parser.parse_args()
    predictor = dfer.load(args.model).predictor
    figures = {"model": args.model, "clips": args.clips, "stores": {}, "folders": {}}
    for store in args.store:
        figures["stores"][str(store)] = found = store_speakers(store, predictor.prior, args.clips)
        for stream, f in found.items():
            print(f"{store} ({f['groups']} groups), {stream}: mean offset {f['mean']['mean']:.2f} rms "
                  f"(largest {f['mean']['largest']:.2f}), log std {f['log_std']['mean']:.2f} "
                  f"(largest {f['log_std']['largest']:.2f})")
    for folder in args.folder:
        figures["folders"][str(folder)] = found = folder_group(predictor, folder)
        for stream, f in found.items():
            print(f"{folder} ({f['clips']} clips), {stream}: mean offset {f['mean']:.2f} rms, "
                  f"log std {f['log_std']:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
