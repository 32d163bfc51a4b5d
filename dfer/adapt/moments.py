"""Moments: the sufficient statistics of a stream's valid tokens over a clip or a group of clips.

A group's per-dimension mean and std are computed from the sums of its clips' tokens, so they add up exactly clip by
clip: a group is the sum of its clips (in any order, one clip at a time as a timeline or a server session sees
them), and the numbers equal numpy's mean and population std over the same tokens. Sums are float64: a group of a
thousand clips of 16 x 196 patch tokens each is 3 M tokens, too many for float32's 24 bits.

Which tokens count is what the heads read (`dfer.heads.model.DferHeads.forward`): audio frames inside
`audio/length` of a clip that has audio; video patch tokens of the frames with a detected face, of a clip that has
video. A clip without the stream adds nothing, and a group of clips that count nothing has no statistics of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfer.store.schema import found_array, length_array, tokens_array
from dfer.streams import PRESENT, Stream

STD_FLOOR = 1e-3  # as the heads floor the training set's std (`DferHeads.set_input_statistics`)


@dataclass
class Moments:
    """count tokens, their per-dimension sums (D,) and sums of squares (D,), over `clips` clips that had the stream."""

    count: float
    total: np.ndarray  # (D,) float64
    squares: np.ndarray  # (D,) float64
    clips: int

    @classmethod
    def empty(cls, dim: int) -> Moments:
        return cls(0.0, np.zeros(dim), np.zeros(dim), 0)

    @classmethod
    def of_tokens(cls, tokens: np.ndarray) -> Moments:
        """tokens (M, D), the valid tokens of one clip -> its moments (a clip with none counts as no clip)."""
        x = np.asarray(tokens, np.float64)  # (M, D)
        return cls(float(len(x)), x.sum(0), np.square(x).sum(0), int(len(x) > 0))

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.count + other.count, self.total + other.total, self.squares + other.squares,
                       self.clips + other.clips)

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(self.count, 1.0)  # (D,)

    @property
    def var(self) -> np.ndarray:
        return np.maximum(self.squares / max(self.count, 1.0) - np.square(self.mean), 0.0)  # (D,)

    def standardiser(self, prior: tuple[np.ndarray, np.ndarray], shrink: float) -> tuple[np.ndarray, np.ndarray]:
        """The (mean (D,), std (D,)) to standardise this group's tokens with, given the training set's `prior`
        (mean, std): the moments of a mixture of the group's tokens, weight w = clips / (clips + shrink), and the
        training set's, weight 1 - w. `shrink` is the prior's strength in clips: a group of `shrink` clips is
        half its own. A group of fewer than two clips keeps the prior: one clip standardised by itself would lose
        its own mean, which is where an utterance-level emotion lives."""
        prior_mean, prior_std = (np.asarray(p, np.float64) for p in prior)
        if self.clips < 2:
            return prior_mean, np.maximum(prior_std, STD_FLOOR)
        w = self.clips / (self.clips + shrink)
        mean = w * self.mean + (1 - w) * prior_mean  # (D,)
        var = w * (self.var + np.square(self.mean - mean)) + (1 - w) * (np.square(prior_std) +
                                                                      np.square(prior_mean - mean))  # (D,)
        return mean, np.maximum(np.sqrt(var), STD_FLOOR)


def valid_tokens(stream: Stream, row: dict) -> np.ndarray:
    """The tokens of one clip's store row (`row["<stream>/tokens"]` decoded to floats) that the heads read, (M, D):
    a sequence's first `<stream>/length`, a grid's or a vector's on the frames with the face (`found_array`)."""
    tokens = np.asarray(row[tokens_array(stream.name)], np.float32)
    if not bool(row[PRESENT[stream.input]]):
        return tokens[:0].reshape(0, tokens.shape[-1])
    if stream.tokens == "sequence":
        return tokens[:int(row[length_array(stream.name)])]  # (Ta, D)
    found = np.asarray(row[found_array(stream.name, stream.input)], bool)  # (T,)
    return tokens[found].reshape(-1, tokens.shape[-1])  # (T_found * N, D), or (T_found, D) of a vector


def row_arrays(stream: Stream) -> tuple[str, ...]:
    """The store arrays besides its tokens that `valid_tokens` reads of a stream."""
    return (PRESENT[stream.input], length_array(stream.name) if stream.tokens == "sequence"
            else found_array(stream.name, stream.input))


def row_moments(row: dict, streams: tuple[Stream, ...]) -> dict[str, Moments]:
    """stream name -> the moments of one clip's store row, for each of `streams`."""
    return {stream.name: Moments.of_tokens(valid_tokens(stream, row)) for stream in streams}


def group_moments(rows: list[dict[str, Moments]], dims: dict[str, int]) -> dict[str, Moments]:
    """The sum of clips' moments, per stream (`dims`: stream -> D)."""
    total = {stream: Moments.empty(dim) for stream, dim in dims.items()}
    for moments in rows:
        for stream in total:
            total[stream] = total[stream] + moments[stream]
    return total
