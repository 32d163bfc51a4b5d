"""Every clip's token moments of a store, read once: what training, the probe and evaluation group by speaker.

The moments of a group are the sum of its clips' rows here (`ClipMoments.of`), so a cross-validation that groups the
same clips many ways (each fold's training speakers, random sub-groups in training) reads each clip's tokens once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dfer.adapt.moments import Moments, row_arrays, valid_tokens
from dfer.store.reader import CacheReader
from dfer.store.schema import tokens_array
from dfer.streams import PRESENT, Stream


def stored_valid_tokens(reader: CacheReader, stream: Stream, index: int) -> np.ndarray:
    """A stored clip's tokens of `stream` that the heads read (`valid_tokens`), (M, D) float32; none (M = 0), and its
    tokens not read, when the clip lacks the stream's input."""
    row = {name: reader.read(name, index) for name in row_arrays(stream)}
    if not row[PRESENT[stream.input]]:
        return np.zeros((0, stream.dim), np.float32)
    return valid_tokens(stream, {**row, tokens_array(stream.name): reader.tokens(stream.name, index)})


class ClipMoments:
    """Per stream, every listed clip's moments as arrays: count (C,), total (C, D), squares (C, D), float64."""

    def __init__(self, reader: CacheReader, streams: Sequence[str], indices: Sequence[int]):
        self.streams = tuple(streams)
        self.rows = {int(index): position for position, index in enumerate(indices)}  # clip row -> position
        shapes = {stream.name: stream for stream in reader.streams}
        dims = {s: shapes[s].dim for s in self.streams}
        self.count = {s: np.zeros(len(self.rows)) for s in self.streams}
        self.total = {s: np.zeros((len(self.rows), dims[s])) for s in self.streams}
        self.squares = {s: np.zeros((len(self.rows), dims[s])) for s in self.streams}
        for index, position in self.rows.items():
            for stream in self.streams:
                x = stored_valid_tokens(reader, shapes[stream], index).astype(np.float64)  # (M, D)
                self.count[stream][position] = len(x)
                self.total[stream][position] = x.sum(0)
                self.squares[stream][position] = np.square(x).sum(0)

    def of(self, indices: Sequence[int]) -> dict[str, Moments]:
        """stream -> the moments of the group of clip rows `indices`."""
        positions = np.asarray([self.rows[int(i)] for i in indices], dtype=np.int64)
        return {s: Moments(float(self.count[s][positions].sum()), self.total[s][positions].sum(0),
                           self.squares[s][positions].sum(0), int((self.count[s][positions] > 0).sum()))
                for s in self.streams}


def speaker_groups(reader: CacheReader, indices: Sequence[int]) -> list[list[int]]:
    """The clip rows `indices` grouped by their `speaker` listing, in order of first appearance; a clip with no
    speaker (an empty id: a manifest row without one, DFEW, MAFW) is a group of its own, a lone clip."""
    speakers = reader.read_all("speaker")
    groups: dict[str, list[int]] = {}
    lone = []
    for index in indices:
        speaker = str(speakers[int(index)])
        if speaker:
            groups.setdefault(speaker, []).append(int(index))
        else:
            lone.append([int(index)])
    return [*groups.values(), *lone]


def check_has_speakers(reader: CacheReader, indices: Sequence[int], what: str) -> None:
    """Refuse `--adapt speaker` on clips none of which has a speaker id, in one line naming the reason."""
    speakers = reader.read_all("speaker")
    if not any(str(speakers[int(i)]) for i in indices):
        raise ValueError(f"{what}: --adapt speaker needs speaker ids, and the {reader.attrs.get('dataset', 'store')} "
                         f"clips have none (DFEW and MAFW do not record who speaks); use --adapt none")


def moments_by_speaker(reader: CacheReader, streams: Sequence[str], parts: dict[str, list[int]],
                       required: str) -> tuple[ClipMoments, dict[str, list[list[int]]]]:
    """The moments of every clip of `parts` (name -> clip rows), read once, and each part's clips grouped by speaker
    id; refuses (`check_has_speakers`) when no clip of part `required` has a speaker id."""
    check_has_speakers(reader, parts[required], str(reader.path))
    moments = ClipMoments(reader, streams, sorted({row for rows in parts.values() for row in rows}))
    return moments, {part: speaker_groups(reader, rows) for part, rows in parts.items()}
