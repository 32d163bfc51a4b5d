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

**Face actions** (a run made with `dfer zeroshot --actions`; `actions` > 0 in its config's "heads"): the answer is
a product of two experts, fixed before it was measured and never fitted:

    logits (B, C) = log p_network (B, C) + ACTION_WEIGHT * match (B, C)

where match is each class's EMFACS prototype match (`dfer.encoders.action_units.prototype_match`, 0..1), computed
on each frame whose face the landmarker read and averaged over those frames, as the network's probabilities are. The
batch carries the frames' blendshapes as "face_actions" (B, T, 52), NaN where the face was not read (the predictor
reads them, `dfer.predict.predictor`). A class no prototype means gets the mean match of those one does, so the
actions neither favour nor disfavour it; a clip without a frame read keeps the network's answer. A run without
`actions` in its config answers exactly as before.

`forward` takes the heads' `hide` and `keep_steps`, and `roi_attention` gives where on the 7x7 grid the evidence
for the answer lies, so `dfer explain` runs a zero-shot run as it runs the heads. The classifier is a global mean
then a linear layer, so a label's logit is exactly the mean over the grid of w_label . token_n (+ bias): a class
activation map (Zhou et al., CVPR 2016) is its exact decomposition, no gradients or approximations involved.
"""

from __future__ import annotations

import torch
from torch import nn

from dfer.encoders.action_units import prototype_match
from dfer.encoders.classifier import TokenClassifier
from dfer.heads.fusion import masked_mean
from dfer.heads.probe import ABSENT
from dfer.heads.roi import RoiAttention

# How far the actions move the answer: each tenth of a prototype's match multiplies its class's odds by e^0.5 (1.65);
# a face showing all of a prototype's actions at full strength, against one showing none, moves them e^5 (about
# 150:1), the odds of a confident network's answer (p = 0.99). Chosen before any clip was scored with it.
ACTION_WEIGHT = 5.0


class ZeroShot(nn.Module):
    """forward(batch) -> {"logits": (B, C), "mask_video": (B, T) the frames it read}. `class_of_label`: per
    classifier label, the index of the store class it means, or -1 (`dfer.data.names.match_labels`)."""

    streams = ("video",)

    def __init__(self, dim: int, labels: list[str], class_of_label: list[int], num_classes: int,
                 modalities: str = "video", actions: float = 0.0, class_of_emotion: list[int] | None = None):
        """actions: the face actions' weight (ACTION_WEIGHT; 0: the network alone); class_of_emotion: per
        `dfer.encoders.action_units.EMOTIONS`, the index of the store class it means, or -1."""
        super().__init__()
        if modalities != "video":
            raise ValueError(f"a zero-shot model reads the face tokens only, not modalities={modalities!r}")
        # the constructor's arguments: a run's config.json "heads", as for LinearProbe; a run without actions records
        # none, so its config reads as every zero-shot run's before them
        self.config = {"dim": dim, "labels": list(labels), "class_of_label": list(class_of_label),
                       "num_classes": num_classes, "modalities": modalities}
        self.actions = float(actions)
        if self.actions:
            if class_of_emotion is None:
                raise ValueError("a zero-shot model reading face actions needs class_of_emotion")
            self.config.update(actions=self.actions, class_of_emotion=list(class_of_emotion))
            self.register_buffer("emotion_mapping", one_hot_rows(class_of_emotion, num_classes), persistent=False)
        self.classifier = TokenClassifier(dim, labels)
        self.register_buffer("mapping", one_hot_rows(class_of_label, num_classes), persistent=False)  # (L, C)
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
        if self.actions:
            scored = scored + self.actions * self.action_match(batch, faces)
        logits = torch.where(faces.any(1, keepdim=True), scored, self.log_prior)  # (B, C)
        return {"logits": logits, "mask_video": faces}

    @property
    def reads_actions(self) -> bool:
        """Whether the batch must carry the frames' face actions ("face_actions")."""
        return bool(self.actions)

    def action_match(self, batch: dict[str, torch.Tensor], faces: torch.Tensor) -> torch.Tensor:
        """(B, C) each class's prototype match, averaged over the `faces` (B, T) frames the landmarker read (module
        docstring); 0 for a clip without one."""
        if "face_actions" not in batch:
            raise ValueError("this zero-shot run reads face actions (its config's heads.actions), which a store does "
                             "not hold: score it on video files (dfer predict)")
        blendshapes = batch["face_actions"].float()  # (B, T, 52), NaN where not read
        read = faces & ~blendshapes.isnan().any(-1)  # (B, T)
        match = masked_mean(prototype_match(blendshapes.nan_to_num()), read) @ self.emotion_mapping  # (B, C)
        covered = self.emotion_mapping.sum(0) > 0  # (C,) the classes a prototype means
        mean = match[:, covered].mean(-1, keepdim=True)  # (B, 1)
        return torch.where(covered, match, mean) * read.any(1, keepdim=True)  # (B, C)

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


def one_hot_rows(class_of: list[int], num_classes: int) -> torch.Tensor:
    """(len(class_of), C): row i one-hot at class_of[i], all zero where it is -1 (a name the store lacks)."""
    mapping = torch.zeros(len(class_of), num_classes)
    for row, cls in enumerate(class_of):
        if cls >= 0:
            mapping[row, cls] = 1.0
    return mapping
