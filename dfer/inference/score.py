"""A model's class probabilities over batches, without gradients: the scoring loop of validation, evaluation,
stage 3 and prediction alike."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from dfer.inference.batch import to_device


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and class probabilities (n, C) over host batches (`collate`d rows), in their order."""
    model.eval()
    labels, probs = [], []
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device):
            logits = model(batch)["logits"]
        probs.append(logits.float().softmax(-1).cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
    return np.concatenate(labels), np.concatenate(probs)
