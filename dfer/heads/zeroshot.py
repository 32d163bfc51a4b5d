"""ZeroShot: the vision encoder's own expression classifier as a model on the heads' batch, so a zero-shot run is
scored, evaluated, served and explained like any other run (`dfer zeroshot`, `dfer.train.zeroshot`).

    video_tokens (B, T, N, D) --the encoder's classifier, per frame--> logits (B, T, L) over its L labels
      --softmax over the labels the store has--> (B, T, L) --mean over the frames with a face--> (B, L)
      --labels -> the store's classes by meaning (`dfer.data.names.match_labels`)--> probabilities (B, C)

How frames combine: the arithmetic mean of the per-frame probabilities (a linear opinion pool). A clip's frames are
not independent witnesses: a turned head, a blink or a blurred frame makes a confident wrong guess, and a product of
probabilities (a mean of log-probabilities) lets one such frame veto every other; the mean lets each frame weigh
1/T. It is also what face-api.js's own users do over a video, and what the zero-shot figures in
recipes were measured with.

Classes: the classifier is asked only among the labels the store has (its softmax is over those logits), so
"surprised" on CREMA-D, which has no such class, takes no probability from the others. A store class no label means
(RAVDESS calm, MAFW contempt) can never be predicted: its logit is `ABSENT`, probability 0, and UAR still counts it.
A clip without a frame with a face gets the log prior, the class frequencies of the clips the run was fitted on, so
its answer is the best guess without evidence, never a silent copy of the classifier's bias.
"""

from __future__ import annotations

import torch
from torch import nn

from dfer.encoders.classifier import TokenClassifier
from dfer.heads.fusion import masked_mean
from dfer.heads.probe import ABSENT


class ZeroShot(nn.Module):
    """forward(batch) -> {"logits": (B, C)}. `class_of_label`: per classifier label, the index of the store class
    it means, or -1 (`dfer.data.names.match_labels`)."""

    def __init__(self, dim: int, labels: list[str], class_of_label: list[int], num_classes: int,
                 modalities: str = "video"):
        super().__init__()
        if modalities != "video":
            raise ValueError(f"a zero-shot model reads the face tokens only, not modalities={modalities!r}")
        # the constructor's arguments: a run's config.json "heads", as for LinearProbe
        self.config = {"dim": dim, "labels": list(labels), "class_of_label": list(class_of_label),
                       "num_classes": num_classes, "modalities": modalities}
        self.classifier = TokenClassifier(dim, labels)
        mapping = torch.zeros(len(labels), num_classes)  # (L, C) one-hot rows; all zero for a label the store lacks
        for label, cls in enumerate(class_of_label):
            if cls >= 0:
                mapping[label, cls] = 1.0
        self.register_buffer("mapping", mapping, persistent=False)
        self.register_buffer("log_prior", torch.zeros(num_classes))

    @property
    def known(self) -> torch.Tensor:
        """(C,) bool: the store classes some label means."""
        return self.mapping.sum(0) > 0

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens = batch["video_tokens"].float()  # (B, T, N, D)
        B, T = tokens.shape[:2]
        faces = batch["has_video"].bool()[:, None] & batch["face_found"].bool()  # (B, T)
        logits = self.classifier(tokens.flatten(0, 1)).unflatten(0, (B, T))  # (B, T, L)
        asked = self.mapping.sum(1) > 0  # (L,) the labels the store has
        frame_probs = logits.masked_fill(~asked, float("-inf")).softmax(-1)  # (B, T, L)
        probs = masked_mean(frame_probs, faces) @ self.mapping  # (B, C)
        scored = torch.where(self.known, probs.clamp(min=1e-30).log(), ABSENT)  # (B, C)
        return {"logits": torch.where(faces.any(1, keepdim=True), scored, self.log_prior)}  # (B, C)

    @torch.no_grad()
    def set_prior(self, labels: torch.Tensor) -> None:
        """The class frequencies of the fitting clips' `labels` (n,), as the no-face answer; ABSENT for a class
        none of them has."""
        counts = torch.bincount(labels.long(), minlength=len(self.log_prior)).double()  # (C,)
        self.log_prior.copy_(torch.where(counts > 0, (counts / counts.sum()).log(), ABSENT).float())
