"""MTCNN's three networks (Zhang et al., "Joint face detection and alignment using multitask cascaded convolutional
networks", 2016) with the weights facenet-pytorch 2.6.0 ships, vendored (`weights/mtcnn/`, MIT, SHA-256 checked).

dfer's detector (`dfer.faces.detect`) runs its own pyramid, crops and box arithmetic (`dfer.faces.boxes`), so it
needs only these networks: facenet-pytorch itself pins torch < 2.3 and is no longer maintained, so it stays a test
reference (`tests/test_face_detect.py` compares boxes with its `MTCNN.detect`). The layer names are the checkpoints'
own (conv1, prelu1, ...), so its state dicts load unchanged.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from dfer.vendored import read_vendored

WEIGHTS = Path(__file__).parent / "weights" / "mtcnn"
SHIPPED_SHA256 = {  # facenet-pytorch 2.6.0, facenet_pytorch/data/
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
THRESHOLDS = (0.6, 0.7, 0.7)  # the face probability each stage keeps a box at (facenet-pytorch's defaults)
FACTOR = 0.709  # the pyramid's scale step (about 1/sqrt(2): each level halves the pixels)


class PNet(nn.Module):
    """Proposals: (N, 3, h, w) -> box offsets (N, 4, h', w'), face probabilities (N, 2, h', w'), one per 12-pixel
    window at a stride of 2 (h' = ceil((h - 2) / 2) - 4)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 10, 3), nn.PReLU(10), nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))  # (N, 32, h', w')
        return self.conv4_2(x), self.conv4_1(x).softmax(1)


class RNet(nn.Module):
    """Refinement: 24-pixel crops (N, 3, 24, 24) -> box offsets (N, 4), face probabilities (N, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 28, 3), nn.PReLU(28), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2, self.pool2 = nn.Conv2d(28, 48, 3), nn.PReLU(48), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))  # (N, 64, 3, 3)
        x = self.prelu4(self.dense4(_flat(x)))  # (N, 128)
        return self.dense5_2(x), self.dense5_1(x).softmax(1)


class ONet(nn.Module):
    """Output: 48-pixel crops (N, 3, 48, 48) -> box offsets (N, 4), landmarks (N, 10: five x, then five y, as
    fractions of the box), face probabilities (N, 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1, self.pool1 = nn.Conv2d(3, 32, 3), nn.PReLU(32), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2, self.pool2 = nn.Conv2d(32, 64, 3), nn.PReLU(64), nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3, self.pool3 = nn.Conv2d(64, 64, 3), nn.PReLU(64), nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))  # (N, 128, 3, 3)
        x = self.prelu5(self.dense5(_flat(x)))  # (N, 256)
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)


class Nets(NamedTuple):
    """The three networks, in the order MTCNN's stages run them."""

    pnet: PNet
    rnet: RNet
    onet: ONet


def load_mtcnn(device: str | torch.device = "cpu") -> Nets:
    """The three networks with their vendored weights, in eval mode on `device`."""
    nets = Nets(PNet(), RNet(), ONet())
    for name, net in zip(Nets._fields, nets):
        data = read_vendored(WEIGHTS / f"{name}.pt", SHIPPED_SHA256[name], f"facenet-pytorch 2.6.0's {name}.pt",
                             "mtcnn-weights")
        net.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), strict=True)
        net.to(device).eval().requires_grad_(False)
    return nets


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, W * H * C) in the order the dense layers were trained on (Caffe's, width first)."""
    return x.permute(0, 3, 2, 1).reshape(len(x), -1)
