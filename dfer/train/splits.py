"""Which cached clips train, validate and test a run, following the dataset's own protocol.

Numbers only compare with the literature when the protocol is the literature's: k-fold by speaker (RAVDESS 6
folds by actor, CREMA-D 5 by speaker) or the official splits. Those protocols have no validation set, so one is
held out from the *training* speakers (never the test speakers), chosen by the seed; with a single training
speaker the hold-out is made of clips instead, and the notes say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dfer.store.reader import CacheReader
from dfer.streams import PRESENT, select


@dataclass
class Split:
    name: str  # "fold3", "official", "all"
    train: list[int]
    val: list[int]
    test: list[int]
    notes: list[str] = field(default_factory=list)


def usable_clips(reader: CacheReader, modalities: str) -> np.ndarray:
    """Done clips that carry the modality a model needs (an audio model cannot learn from a silent clip)."""
    done = reader.read_all("done").astype(bool)
    inputs = {stream.input for stream in select(reader.streams, modalities)}
    needed = np.logical_or.reduce([reader.read_all(PRESENT[name]).astype(bool) for name in sorted(inputs)])
    return done & needed


def plan(reader: CacheReader, fold: str, modalities: str, seed: int,
         val_fraction: float = 0.15) -> tuple[list[Split], list[str]]:
    """`fold`: a fold number, "all" (every fold of the protocol; official splits: the one split), or "none"
    (train on every usable clip, no validation or test: for a final model scored later with `dfer evaluate`).
    Returns the splits and notes on folds skipped because the store lacks their clips (a partial dataset)."""
    usable = usable_clips(reader, modalities)
    speakers = reader.read_all("speaker").astype(str)
    protocol = reader.attrs["protocol"]
    if fold == "none":
        return [Split("all", [int(i) for i in np.flatnonzero(usable)], [], [], ["training on every clip: no validation"])], []
    if protocol["kind"] == "split":
        if fold not in ("all", "official"):
            raise ValueError(f"{reader.path}: the dataset has official splits, not folds: use --fold all")
        split = reader.read_all("split").astype(str)
        train, val, test = (np.flatnonzero(usable & (split == s)) for s in ("train", "val", "test"))
        return [_with_validation("official", train, val, test, speakers, seed, val_fraction)], []
    folds = reader.read_all("fold")
    wanted = range(1, protocol["folds"] + 1) if fold == "all" else [int(fold)]
    splits, skipped = [], []
    for k in wanted:
        if not 1 <= k <= protocol["folds"]:
            raise ValueError(f"fold {k} is outside this protocol's folds 1..{protocol['folds']}")
        test = np.flatnonzero(usable & (folds == k))
        train = np.flatnonzero(usable & (folds != k))
        if len(test) == 0 or len(train) == 0:
            skipped.append(f"fold {k}: skipped, the store has {len(train)} training and {len(test)} test clips for it")
            continue
        splits.append(_with_validation(f"fold{k}", train, np.array([], int), test, speakers, seed + k, val_fraction))
    return splits, skipped


def _with_validation(name, train, val, test, speakers, seed, fraction) -> Split:
    notes = []
    if len(val) == 0 and fraction == 0:
        notes.append("no validation (val_fraction 0): every training speaker trains, the last epoch is kept")
    elif len(val) == 0:
        rng = np.random.default_rng(seed)
        train_speakers = sorted(set(speakers[train]))
        if len(train_speakers) > 1:
            count = max(1, round(fraction * len(train_speakers)))
            held = set(rng.choice(train_speakers, size=count, replace=False))
            val = train[np.isin(speakers[train], list(held))]
            train = train[~np.isin(speakers[train], list(held))]
            notes.append(f"validation: held out training speakers {sorted(held)} ({len(val)} clips)")
        else:
            count = max(1, round(fraction * len(train))) if len(train) > 1 else 0
            order = rng.permutation(len(train))
            val, train = np.sort(train[order[:count]]), np.sort(train[order[count:]])
            who = "no speaker ids" if train_speakers in ([], [""]) else "one training speaker"
            notes.append(f"validation: {who}, so {len(val)} training clips are held out instead")
    return Split(name, [int(i) for i in train], [int(i) for i in val], [int(i) for i in test], notes)
