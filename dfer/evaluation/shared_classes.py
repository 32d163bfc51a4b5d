"""Scoring a run on a store of another corpus, whose classes are not the run's: the cross-corpus protocol of speech
emotion recognition (Schuller et al., "Cross-corpus acoustic emotion recognition", IEEE TAC 2010), on the emotions
both name.

A RAVDESS voice knows eight emotions and CREMA-D six; "calm" and "surprised" can never be right on CREMA-D, so
scoring the run's top answer over all eight would measure the label sets as much as the model. Instead the run's
probabilities are kept for the emotions the store also has (matched by meaning, `dfer.data.names.match_labels`),
renormalised over them, and the store's clips of an emotion the run does not know are left out. A store of the run's
own classes is scored as it always was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfer.data.names import match_labels


@dataclass(frozen=True)
class SharedClasses:
    """The store's classes the run also knows, and where each sits among the run's outputs."""

    where: str  # the store, for errors
    store_codes: list[str]  # the store's classes, as it keeps them
    store_names: list[str]  # their display names, in the same order
    run_names: list[str]  # the run's display names, in its class order
    columns: list[int]  # for each store class, the index of the run's class of the same emotion, or -1

    @property
    def kept(self) -> list[int]:
        """The store classes that are scored (the run has an emotion of the same meaning), in store order."""
        return [i for i, column in enumerate(self.columns) if column >= 0]

    @property
    def codes(self) -> list[str]:
        return [self.store_codes[i] for i in self.kept]

    @property
    def names(self) -> list[str]:
        return [self.store_names[i] for i in self.kept]

    def scored(self, indices: list[int], labels: np.ndarray, probs: np.ndarray
               ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The store rows `indices` (n,), their store class indices `labels` (n,) and the run's probabilities `probs`
        (n, C_run) -> the clips of a kept class: their rows, their labels among `kept` (m,), and the run's
        probabilities over the K kept classes in store order, renormalised to sum to 1 (m, K)."""
        labels = np.asarray(labels)
        keep = np.isin(labels, self.kept)  # (n,)
        if not keep.any():
            raise ValueError(f"{self.where}: none of its clips is of an emotion the run knows")
        position = {store: i for i, store in enumerate(self.kept)}
        return ([int(i) for i in np.asarray(indices)[keep]],
                np.array([position[int(label)] for label in labels[keep]], dtype=np.int64),
                self.restrict(np.asarray(probs)[keep]))

    def restrict(self, probs: np.ndarray) -> np.ndarray:
        """(n, C_run) run probabilities -> (n, K) over the K kept classes in store order, renormalised to sum to 1."""
        probs = np.asarray(probs, dtype=np.float64)[:, [self.columns[i] for i in self.kept]]  # (n, K)
        return probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)

    def describe(self) -> str:
        """The protocol in words, for the output and metrics.json."""
        read = {self.columns[i] for i in self.kept}
        aside = [name for j, name in enumerate(self.run_names) if j not in read]
        unknown = [name for name, column in zip(self.store_names, self.columns) if column < 0]
        words = f"cross-corpus: scored on the {len(self.kept)} emotions both name"
        words += f", the run's probabilities renormalised over them ({', '.join(aside)} set aside)" if aside else ""
        return words + (f"; the store's {', '.join(unknown)} clips left out" if unknown else "")


def shared_classes(store_codes: list[str], store_names: list[str], run_names: list[str], where: str
                   ) -> SharedClasses:
    """How a run of `run_names` reads a store of `store_names` (display names; `store_codes` the codes it keeps);
    `where` names the store in errors, raised here when the two share no emotion."""
    columns = match_labels(store_names, run_names)
    if max(columns) < 0:
        raise ValueError(f"{where}: its classes ({', '.join(store_names)}) share no emotion with the run's "
                         f"({', '.join(run_names)})")
    return SharedClasses(where, list(store_codes), list(store_names), list(run_names), columns)
