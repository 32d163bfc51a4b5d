"""RoiCompressor: per frame, N SigLIP patch tokens -> K tokens, steered towards the expressive parts of the face.

Expressions live in a few places (brows, eyes, mouth), and a 14x14 grid spends most of its 196 tokens on cheeks, hair
and background. A Perceiver-resampler-style cross-attention lets K learned queries read the whole grid, and two
additive biases on its logits say where to look:

- a landmark prior: Gaussian bumps over the patch grid centred on the MTCNN points and a few points derived from them
  (brows, mouth centre), mixed per query with learned weights, so one query can specialise on the mouth and another
  on the brows from the first step instead of discovering where the mouth is;
- a learned saliency score per patch (linear on the token), shared by all queries, which can raise or lower any
  patch from what it contains (e.g. occluding hands) where the landmarks are wrong or missing.

A frame without usable landmarks (no face detected, or NaN landmarks) gets no landmark prior, only the saliency: the
output is still finite.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# Landmark regions, in the order of `RoiCompressor.landmark_points`: the 5 MTCNN points, the two brows (above each eye,
# away from the nose) and the mouth centre. Brows carry AU1/AU2/AU4 (raised / lowered brows); MTCNN has no point there.
REGIONS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "left_brow", "right_brow", "mouth")
BROW_OFFSET = 0.5  # brow = eye - 0.5 * (nose - eye midpoint): the nose tip is ~0.7 interocular distances below the
# eyes, so this lands ~0.35 IOD above each eye, on the brow, and it turns with the head since it follows the face axes
PRIOR_SIGMA = 0.08  # initial bump width, fraction of the crop side: ~1.1 patches on a 14x14 grid, about an eye's width
PRIOR_STRENGTH = 2.0  # initial logit bonus at a query's own region centre: e^2 ~ 7x the attention a plain patch gets


# Keys that runs saved by older dfer versions hold and this module no longer has, dropped when loading them.
# `saliency.bias`: it added one constant to every logit of each softmax, so whatever value a run saved, the outputs
# are the same without it.
OBSOLETE_KEYS = ("saliency.bias",)


class RoiAttention(NamedTuple):
    """What steered one ROI compression: the attention weights and the landmark prior part of their logits."""

    weights: torch.Tensor  # (B, T, h, K, N) softmax over the N patches, per head and query
    prior: torch.Tensor  # (B, T, K, N) the landmark prior's logit bonus per query (0 for frames without landmarks)


def drop_obsolete_keys(module: nn.Module, state_dict: dict, prefix: str, *_) -> None:
    """load_state_dict pre-hook: remove OBSOLETE_KEYS, so old runs still load with strict=True."""
    for key in OBSOLETE_KEYS:
        state_dict.pop(prefix + key, None)


class RoiCompressor(nn.Module):
    """(B, T, N, D) patch tokens + (B, T, 5, 2) landmarks -> (B, T, K, d) ROI tokens.

    vision_dim: D, the encoder's token width. d: output width. grid: patches per side (N = grid * grid, row-major).
    image_size: crop side in pixels, the unit of the landmarks. num_queries: K. One cross-attention block followed by
    an MLP, both residual on the queries, as in Flamingo's Perceiver resampler.
    """

    def __init__(self, vision_dim: int, d: int, grid: int, image_size: int, num_queries: int = 16, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        assert d % heads == 0, f"d={d} must be divisible by heads={heads}"
        self.grid, self.image_size, self.heads, self.dropout = grid, image_size, heads, dropout
        num_patches, num_regions = grid * grid, len(REGIONS)
        self.proj = nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, d))  # D -> d before anything else
        self.pos = nn.Parameter(torch.zeros(num_patches, d))  # SigLIP tokens carry position; re-stated at width d
        # No bias: the score is added to all N logits of every query, and a constant added to all of a softmax's
        # logits changes nothing, so a bias here would get an exactly zero gradient and never learn.
        self.saliency = nn.Linear(d, 1, bias=False)
        nn.init.zeros_(self.saliency.weight)  # start from the landmark prior alone
        self.register_load_state_dict_pre_hook(drop_obsolete_keys)

        # Patch centres in crop fractions (0..1), row-major like the tokens: patch n = (row, col) = divmod(n, grid).
        centre = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
        ys, xs = torch.meshgrid(centre, centre, indexing="ij")
        self.register_buffer("patch_xy", torch.stack([xs, ys], -1).reshape(num_patches, 2), persistent=False)  # (N, 2)
        self.log_sigma = nn.Parameter(torch.full((num_regions,), math.log(PRIOR_SIGMA)))  # one width per region

        # Per-query region mixing (K, R): query k starts on region k mod R with a bonus; the last K // 4 queries start
        # with no prior at all, free to find what the landmarks do not cover (cheek raise, nasolabial folds).
        mix = torch.zeros(num_queries, num_regions)
        for k in range(num_queries - num_queries // 4):
            mix[k, k % num_regions] = PRIOR_STRENGTH
        self.region_mix = nn.Parameter(mix)

        self.queries = nn.Parameter(torch.randn(num_queries, d) * d**-0.5)  # (K, d)
        self.norm_q, self.norm_kv = nn.LayerNorm(d), nn.LayerNorm(d)
        self.to_q = nn.Linear(d, d, bias=False)
        self.to_kv = nn.Linear(d, 2 * d, bias=False)  # a key bias would be dead: q . b is one constant over N logits
        self.out = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * d, d))
        self.norm_out = nn.LayerNorm(d)

    @staticmethod
    def landmark_points(landmarks: torch.Tensor) -> torch.Tensor:
        """(..., 5, 2) MTCNN points -> (..., R, 2) region centres (the 5 points, both brows, the mouth centre)."""
        left_eye, right_eye, nose = landmarks[..., 0, :], landmarks[..., 1, :], landmarks[..., 2, :]
        eye_mid = (left_eye + right_eye) / 2
        down = nose - eye_mid  # (..., 2) from between the eyes to the nose tip
        brows = torch.stack([left_eye - BROW_OFFSET * down, right_eye - BROW_OFFSET * down], -2)  # (..., 2, 2)
        mouth = landmarks[..., 3:5, :].mean(-2, keepdim=True)  # (..., 1, 2)
        return torch.cat([landmarks, brows, mouth], -2)  # (..., R, 2)

    def landmark_maps(self, landmarks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(..., 5, 2) landmarks in crop pixels, (...) bool -> (..., R, N) Gaussian maps in [0, 1], 0 if not valid."""
        landmarks = torch.where(valid[..., None, None], landmarks, 0.0)  # replace NaN first: NaN * 0 is NaN
        points = self.landmark_points(landmarks) / self.image_size  # (..., R, 2) in crop fractions
        dist2 = (points[..., :, None, :] - self.patch_xy).pow(2).sum(-1)  # (..., R, N) squared distance, crop fractions
        sigma = self.log_sigma.clamp(min=math.log(0.01)).exp()[:, None]  # (R, 1); a floor so a bump never vanishes
        maps = torch.exp(-dist2 / (2 * sigma**2))  # (..., R, N)
        return maps * valid[..., None, None]

    def prior(self, landmarks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(..., 5, 2), (...) -> (..., K, N) additive logit bias from the landmarks per query (0 where not valid)."""
        return torch.einsum("kr,...rn->...kn", self.region_mix, self.landmark_maps(landmarks, valid))

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, N, D) -> (B, T, N, d): LayerNorm + Linear, the compressor's first step (no position yet).

        The costliest op of the heads at base size (T x N = 3136 tokens of D = 768 per clip), so `DferHeads` computes
        it once and hands it to both `compress` and the video statistics pooling. It is computed as one Linear of the
        plain-normalised tokens whose weight and bias absorb the LayerNorm's scale and shift, W (g * x + b) + c =
        (W diag g) x + (W b + c): the same function of the same parameters, but the backward pass of frozen-encoder
        tokens (which need no gradient) is then one (D x d) product instead of three passes over the T x N x D tokens
        (the LayerNorm's input gradient product, and its scale and shift gradients)."""
        norm, linear = self.proj
        normed = F.layer_norm(tokens.to(self.pos.dtype), norm.normalized_shape, eps=norm.eps)  # (B, T, N, D)
        weight = linear.weight * norm.weight  # (d, D)
        return F.linear(normed, weight, linear.bias + linear.weight @ norm.bias)  # (B, T, N, d)

    def forward(self, tokens: torch.Tensor, landmarks: torch.Tensor,
                face_found: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T, N, D), landmarks (B, T, 5, 2) crop pixels or NaN, face_found (B, T) bool -> (B, T, K, d)."""
        return self.compress(self.project(tokens), landmarks, face_found)

    def compress(self, projected: torch.Tensor, landmarks: torch.Tensor,
                 face_found: torch.Tensor | None = None) -> torch.Tensor:
        """projected (B, T, N, d) from `project`, landmarks and face_found as `forward`'s -> (B, T, K, d)."""
        B, T = projected.shape[:2]
        q, k, v, bias = self._attention_inputs(projected, landmarks, face_found)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, None].to(q.dtype),
                                              dropout_p=self.dropout if self.training else 0.0)  # (BT, h, K, hs)
        K = self.queries.shape[0]
        z = self.queries + self.out(attn.transpose(1, 2).reshape(B * T, K, -1))  # (BT, K, d)
        z = z + self.mlp(z)  # (BT, K, d)
        return self.norm_out(z).reshape(B, T, K, -1)  # (B, T, K, d)

    def attention(self, tokens: torch.Tensor, landmarks: torch.Tensor,
                  face_found: torch.Tensor | None = None) -> RoiAttention:
        """The attention `forward` applies, written out (SDPA never returns its weights): the same queries, keys and
        biases, softmax(q k^T / sqrt(hs) + bias), so explanations show what the model weighed (eval mode: no
        attention dropout). Shapes as `forward`'s inputs."""
        B, T, N, _ = tokens.shape
        q, k, _, bias = self._attention_inputs(self.project(tokens), landmarks, face_found)
        logits = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + bias[:, None].to(q.dtype)  # (BT, h, K, N)
        weights = logits.softmax(-1).reshape(B, T, self.heads, -1, N)  # (B, T, h, K, N)
        prior = self.prior(landmarks.float(), self._valid(landmarks, face_found))  # (B, T, K, N)
        return RoiAttention(weights, prior)

    def _valid(self, landmarks: torch.Tensor, face_found: torch.Tensor | None) -> torch.Tensor:
        """(B, T, 5, 2), (B, T) -> (B, T) bool: frames whose landmarks may steer the attention."""
        valid = torch.isfinite(landmarks.float()).flatten(-2).all(-1)  # (B, T) usable landmarks
        return valid if face_found is None else valid & face_found.bool()

    def _attention_inputs(self, projected: torch.Tensor, landmarks: torch.Tensor, face_found: torch.Tensor | None):
        """projected (B, T, N, d) from `project` -> queries (BT, h, K, hs), keys and values (BT, h, N, hs), logit bias
        (BT, K, N): prior + saliency."""
        B, T, N, _ = projected.shape
        K, h = self.queries.shape[0], self.heads
        valid = self._valid(landmarks, face_found)  # (B, T)
        x = projected.reshape(B * T, N, -1) + self.pos  # (BT, N, d)

        bias = self.prior(landmarks.float().reshape(B * T, 5, 2), valid.reshape(B * T))  # (BT, K, N)
        bias = bias + self.saliency(x).transpose(1, 2)  # (BT, K, N) + (BT, 1, N)

        q = self.to_q(self.norm_q(self.queries))  # (K, d)
        q = q.reshape(1, K, h, -1).transpose(1, 2).expand(B * T, -1, -1, -1)  # (BT, h, K, hs)
        k, v = self.to_kv(self.norm_kv(x)).chunk(2, -1)  # 2 x (BT, N, d)
        k = k.reshape(B * T, N, h, -1).transpose(1, 2)  # (BT, h, N, hs)
        v = v.reshape(B * T, N, h, -1).transpose(1, 2)  # (BT, h, N, hs)
        return q, k, v, bias
