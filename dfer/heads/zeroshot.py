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

`forward` takes the heads' `hide` and `keep_steps`, and `roi_attention` gives where on the 7x7 grid the evidence
for the answer lies, so `dfer explain` runs a zero-shot run as it runs the heads. The classifier is a global mean
then a linear layer, so a label's logit is exactly the mean over the grid of w_label . token_n (+ bias): a class
activation map (Zhou et al., CVPR 2016) is its exact decomposition, no gradients or approximations involved.
"""

from __future__ import annotations

import torch
from torch import nn

from dfer.encoders.classifier import TokenClassifier
from dfer.heads.fusion import masked_mean
from dfer.heads.probe import ABSENT
from dfer.heads.roi import RoiAttention


class ZeroShot(nn.Module):
    """forward(batch) -> {"logits": (B, C), "mask_video": (B, T) the frames it read}. `class_of_label`: per
    classifier label, the index of the store class it means, or -1 (`dfer.data.names.match_labels`)."""

    streams = ("video",)

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

    def input_statistics(self) -> dict:
        """None to adapt: the encoder's own classifier reads its tokens as they are (`dfer.adapt`)."""
        return {}

    @property
    def known(self) -> torch.Tensor:
        """(C,) bool: the store classes some label means."""
        return self.mapping.sum(0) > 0

    def forward(self, batch: dict[str, torch.Tensor], hide: dict[str, torch.Tensor] | None = None,
                keep_steps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """hide: {"video": (B,) bool} rows whose faces are all hidden; keep_steps: (B, T) bool, the frames outside it
        hidden (as `DferHeads.forward` takes them, for explanations)."""
        faces = self.faces(batch, hide, keep_steps)  # (B, T)
        probs = masked_mean(self.frame_probabilities(batch), faces) @ self.mapping  # (B, C)
        scored = torch.where(self.known, probs.clamp(min=1e-30).log(), ABSENT)  # (B, C)
        logits = torch.where(faces.any(1, keepdim=True), scored, self.log_prior)  # (B, C)
        return {"logits": logits, "mask_video": faces}

    @staticmethod
    def faces(batch: dict[str, torch.Tensor], hide: dict[str, torch.Tensor] | None = None,
              keep_steps: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) bool: the frames with a face that are neither hidden nor outside `keep_steps`."""
        faces = batch["has_video"].bool()[:, None] & batch["face_found"].bool()  # (B, T)
        if hide and "video" in hide:
            faces = faces & ~hide["video"].bool()[:, None]
        return faces if keep_steps is None else faces & keep_steps.bool()

    def frame_probabilities(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, L): each frame's probabilities over the labels, asked only among those the store has."""
        tokens = batch["video_tokens"].float()  # (B, T, N, D)
        logits = self.classifier(tokens.flatten(0, 1)).unflatten(0, tokens.shape[:2])  # (B, T, L)
        asked = self.mapping.sum(1) > 0  # (L,)
        return logits.masked_fill(~asked, float("-inf")).softmax(-1)

    @torch.no_grad()
    def roi_attention(self, batch: dict[str, torch.Tensor]) -> RoiAttention:
        """Where each frame's evidence for the clip's answer lies: per grid token n, its part of the answer's logit
        above the frame's expected logit, (w_answer - sum_l p_l w_l) . token_n, the negative parts dropped and each
        frame normalised to sum 1 (0 where nothing speaks for it). weights (B, T, 1, 1, N); no landmark prior (0)."""
        tokens = batch["video_tokens"].float()  # (B, T, N, D)
        answer = self(batch)["logits"].argmax(-1)  # (B,) the predicted class
        label = self.mapping[:, answer].argmax(0)  # (B,) the label that means it (one-hot columns)
        weight = self.classifier.linear.weight  # (L, D)
        expected = self.frame_probabilities(batch) @ weight  # (B, T, D)
        direction = weight[label][:, None] - expected  # (B, T, D)
        evidence = torch.einsum("btnd,btd->btn", tokens, direction).clamp(min=0)  # (B, T, N)
        evidence = evidence * self.faces(batch)[..., None]
        weights = evidence / evidence.sum(-1, keepdim=True).clamp(min=1e-12)  # (B, T, N)
        return RoiAttention(weights[:, :, None, None], torch.zeros_like(weights[:, :, None]))

    @torch.no_grad()
    def set_prior(self, labels: torch.Tensor) -> None:
        """The class frequencies of the fitting clips' `labels` (n,), as the no-face answer; ABSENT for a class
        none of them has."""
        counts = torch.bincount(labels.long(), minlength=len(self.log_prior)).double()  # (C,)
        self.log_prior.copy_(torch.where(counts > 0, (counts / counts.sum()).log(), ABSENT).float())
