"""The `faceapi` vision encoder: face-api.js's pretrained FaceExpressionNet, 112 px face crops -> a 7x7 grid of
256-d tokens, with the network's own 7-expression classifier kept beside it.

It is the one pretrained facial-expression network this project can use without a model hub: the npm package
@vladmandic/face-api 1.7.15 (MIT) ships its weights, and dfer vendors the two files unchanged
(`dfer/encoders/weights/faceapi/`, with the licence and both SHA-256 sums, checked at every load). They are TF.js
layers weights: a manifest of names, shapes and uint8 quantisation, and one binary of the tensors back to back.
They are read with numpy alone, each quantised value as `q * scale + min` (TF.js's own decoding, in float64 then
rounded to float32 as its Float32Array does).

The network (face-api's FaceFeatureExtractor + FaceExpressionNet), 323,687 parameters:

    RGB 0..255 (B, 3, 112, 112) - mean (122.782, 117.001, 104.298), / 255
    dense0: conv 3x3 s2 (3 -> 32)  + 3 separable convs -> (B, 32, 56, 56)
    dense1: separable 3x3 s2 (32 -> 64)   + 3          -> (B, 64, 28, 28)
    dense2: separable 3x3 s2 (64 -> 128)  + 3          -> (B, 128, 14, 14)
    dense3: separable 3x3 s2 (128 -> 256) + 3          -> (B, 256, 7, 7)   = the tokens, 49 row-major
    global mean (TF.js's 7x7 avgPool) -> linear 256 -> 7 (neutral, happy, sad, angry, fearful, disgusted, surprised)

Each dense block is face-api's `denseBlock4`: out1 = relu(conv0(x)), then each of conv1..3 reads the relu of the sum
of all outputs so far, and the block returns relu(out1 + out2 + out3 + out4). Convolutions use TF's "SAME" padding,
which on a stride-2 convolution over an even size pads only the right and bottom, by one (`same_pad`); symmetric
padding would shift every feature by half a pixel. `tests/test_faceapi.py` checks the port against TF.js itself.

Crops: face-api.js feeds the network its detector's box, which is tight. On 9 real clips the network's own
classifier names the acted emotion of 5 when the crop side is 1.0-1.2x the MTCNN box, 3 at 1.4-1.6x; so this family
asks for a 5 % margin on each side (side 1.1x), where the others keep dfer's 25 % (`crop_margin`, recorded in the
store's fingerprint).

Tokens are the last block's output, after its ReLU, so they are non-negative. `forward` stays differentiable for
stage 3, whose `last:N` counts the four dense blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfer.encoders.base import ImageEncoder, Parts
from dfer.encoders.classifier import TokenClassifier
from dfer.encoders.presets import local_revision
from dfer.vendored import read_vendored

SPEC = "faceapi"
SAVE_FORMAT = "dfer.faceapi/1"
WEIGHTS = Path(__file__).parent / "weights" / "faceapi"
MODEL_FILE, MANIFEST_FILE = "face_expression_model.bin", "face_expression_model-weights_manifest.json"
SHIPPED_SHA256 = {  # @vladmandic/face-api 1.7.15, package/model/
    MODEL_FILE: "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
    MANIFEST_FILE: "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
}
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]  # FACE_EXPRESSION_LABELS
MEAN_RGB = (122.782, 117.001, 104.298)  # FaceFeatureExtractor's normalisation, on 0..255 pixels
WIDTHS = (32, 64, 128, 256)  # channels of dense0..dense3
IMAGE_SIZE = 112
CROP_MARGIN = 0.05  # per side, as a fraction of the face box's longer side: crop side 1.1x the detector's box


def same_pad(x: torch.Tensor, stride: int, kernel: int = 3) -> torch.Tensor:
    """x (B, C, H, W) padded as TF's "SAME" pads it: total max((ceil(n / s) - 1) * s + k - n, 0) per axis, the odd
    pixel on the bottom and right."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad lists the last axis first
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SeparableConv(nn.Module):
    """TF's separableConv2d + bias: a 3x3 depthwise convolution (no bias), then a 1x1 pointwise one with bias."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(same_pad(x, self.stride)))


class PlainConv(nn.Module):
    """dense0's first layer: a full 3x3 convolution with bias (the image has 3 channels, too few to separate)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(c_in, c_out, 3, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(same_pad(x, self.stride))


class DenseBlock(nn.Module):
    """face-api's denseBlock4: (B, c_in, H, W) -> (B, c_out, H / 2, W / 2)."""

    def __init__(self, c_in: int, c_out: int, first: bool = False):
        super().__init__()
        self.conv0 = PlainConv(c_in, c_out, 2) if first else SeparableConv(c_in, c_out, 2)
        self.convs = nn.ModuleList(SeparableConv(c_out, c_out, 1) for _ in range(3))  # conv1..conv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.relu(self.conv0(x))  # out1 (B, c_out, H / 2, W / 2)
        for conv in self.convs:  # each reads the relu of the sum of every output so far (out1 is its own relu)
            total = total + conv(torch.relu(total))
        return torch.relu(total)


class FaceApiEncoder(ImageEncoder):
    """(B, 3, 112, 112) face crops -> (B, 49, 256) tokens of the 7x7 grid, row-major; `classifier` names the 7
    expressions from them (`dfer.encoders.classifier`)."""

    image_size, grid, dim = IMAGE_SIZE, 7, WIDTHS[-1]
    num_tokens = grid * grid
    crop_margin = CROP_MARGIN

    def __init__(self, spec: str = SPEC, revision: str | None = None):
        super().__init__()
        self.spec, self.revision = spec, revision
        self.blocks = nn.ModuleList(DenseBlock(c_in, c_out, first=i == 0)
                                    for i, (c_in, c_out) in enumerate(zip((3, *WIDTHS[:-1]), WIDTHS)))
        self.classifier = TokenClassifier(self.dim, LABELS)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).reshape(3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S), uint8 0..255 or float 0..1, S = 112 -> tokens (B, 49, 256)."""
        self.check_size(images)
        pixels = images.float() if images.dtype == torch.uint8 else images.float() * 255.0  # (B, 3, S, S) 0..255
        x = (pixels - self.mean) / 255.0
        for block in self.blocks:
            x = block(x)  # (B, C, S', S')
        return x.flatten(2).transpose(1, 2)  # (B, 49, 256)

    def expressions(self, images: torch.Tensor) -> torch.Tensor:
        """images as `forward` -> (B, 7) probabilities of LABELS: face-api's FaceExpressionNet output."""
        return self.classifier(self(images)).softmax(-1)

    def family_fields(self) -> dict:
        """Its own crops and its classifier's labels (zero-shot runs read them back)."""
        return {"family": "faceapi", "crop_margin": self.crop_margin, "labels": self.classifier.labels}

    def parts(self) -> Parts:
        """No stem: dense0 reads the pixels. The classifier makes no token, so it never trains."""
        return Parts(self, [], list(self.blocks), [], beside=[self.classifier])

    def save(self, path: str | Path) -> None:
        """`config.json` + `model.safetensors`: a folder the builder reads back (e.g. after stage 3)."""
        from safetensors.torch import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"format": SAVE_FORMAT}, indent=2) + "\n")
        save_model(self, str(path / "model.safetensors"))


def load_faceapi(folder: str | Path | None = None, device: str | torch.device = "cpu",
                 meta: bool = False) -> FaceApiEncoder:
    """The vendored pretrained weights, or a folder `save` wrote. Eval mode, float32."""
    if meta:
        with torch.device("meta"):
            return FaceApiEncoder()
    if folder is not None:
        from safetensors.torch import load_model

        config = json.loads((Path(folder) / "config.json").read_text())
        if config.get("format") != SAVE_FORMAT:
            raise ValueError(f"{folder} is not a faceapi encoder folder (config.json lacks format {SAVE_FORMAT!r})")
        encoder = FaceApiEncoder(str(folder), local_revision(folder))
        load_model(encoder, str(Path(folder) / "model.safetensors"), strict=True)
        return encoder.to(device).eval()
    tensors = read_tfjs_weights(WEIGHTS / MANIFEST_FILE)
    encoder = FaceApiEncoder(revision=f"sha256={SHIPPED_SHA256[MODEL_FILE]}")
    encoder.load_state_dict(torch_state(tensors), strict=True)
    return encoder.to(device).eval()


def read_tfjs_weights(manifest_path: Path, expected: dict[str, str] | None = SHIPPED_SHA256) -> dict[str, np.ndarray]:
    """A TF.js weights manifest and its binary files -> name -> float32 array in TF's layout (HWIO filters).

    `expected`: file name -> SHA-256 each file read must have (None: unchecked)."""
    def read(path: Path) -> bytes:
        if expected is None:
            return path.read_bytes()
        return read_vendored(path, expected.get(path.name), f"@vladmandic/face-api 1.7.15's {path.name}",
                             "faceapi-weights")

    tensors = {}
    for group in json.loads(read(manifest_path)):
        data = b"".join(read(manifest_path.parent / name) for name in group["paths"])
        offset = 0
        for entry in group["weights"]:
            size = int(np.prod(entry["shape"], dtype=np.int64))
            quantised = entry.get("quantization")
            if quantised is None:
                if entry["dtype"] != "float32":
                    raise ValueError(f"{manifest_path}: {entry['name']} is {entry['dtype']}, not float32")
                values = np.frombuffer(data, "<f4", size, offset).copy()  # writable, as torch wants
                offset += 4 * size
            else:
                if quantised["dtype"] != "uint8":
                    raise ValueError(f"{manifest_path}: {entry['name']} is quantised to {quantised['dtype']}, "
                                     "not uint8")
                codes = np.frombuffer(data, np.uint8, size, offset).astype(np.float64)
                values = (codes * quantised["scale"] + quantised["min"]).astype(np.float32)
                offset += size
            tensors[entry["name"]] = values.reshape(entry["shape"])
        if offset != len(data):
            raise ValueError(f"{manifest_path}: the manifest describes {offset} bytes, its files hold {len(data)}")
    return tensors


def torch_state(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """face-api's weight names and TF layouts -> FaceApiEncoder's state dict (filters HWIO -> OIHW)."""
    def tensor(name: str, *order: int) -> torch.Tensor:
        value = tensors[name]
        return torch.from_numpy(np.ascontiguousarray(value.transpose(order) if order else value))

    state = {}
    for i in range(len(WIDTHS)):
        for j in range(4):
            tf_name = f"dense{i}/conv{j}"
            ours = f"blocks.{i}." + ("conv0" if j == 0 else f"convs.{j - 1}")
            if i == 0 and j == 0:
                state[f"{ours}.conv.weight"] = tensor(f"{tf_name}/filters", 3, 2, 0, 1)  # (32, 3, 3, 3)
                state[f"{ours}.conv.bias"] = tensor(f"{tf_name}/bias")
                continue
            state[f"{ours}.depthwise.weight"] = tensor(f"{tf_name}/depthwise_filter", 2, 3, 0, 1)  # (C, 1, 3, 3)
            state[f"{ours}.pointwise.weight"] = tensor(f"{tf_name}/pointwise_filter", 3, 2, 0, 1)  # (C', C, 1, 1)
            state[f"{ours}.pointwise.bias"] = tensor(f"{tf_name}/bias")
    state["classifier.linear.weight"] = tensor("fc/weights", 1, 0)  # (7, 256)
    state["classifier.linear.bias"] = tensor("fc/bias")
    return state
