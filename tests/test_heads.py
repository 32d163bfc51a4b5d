"""Stage-2 heads at toy size: shapes, masks, ROI prior, CfC time semantics, every fusion x modality, learnability."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from dfer.heads import FUSIONS, DferHeads, HeadConfig
from dfer.streams import MODES, Stream
from dfer.heads.cfc import CfC, CfCCell
from dfer.heads.fusion import ModalityDropout, since_last_update
from dfer.heads.roi import REGIONS, RoiCompressor
from dfer.heads.segment_pool import SegmentAttentionPool, segment_index
from dfer.heads.temporal import TemporalEncoder
from dfer.streams import historic

# Toy sizes: a 4x4 grid of 16 tokens on 64 px crops (the `tiny` vision preset), 40 audio frames = 3.2 s.
D, DA, GRID, SIZE, T, TA, d, C, FRAME_S = 32, 24, 4, 64, 6, 40, 32, 4, 0.08
N = GRID * GRID
D_RAW = 48  # a token width other than d, so a layer on D cannot pass for one on d
# (5, 2) a frontal face in a 64 px crop; no point on a patch border, so "the patch containing it" is unambiguous
LANDMARKS = torch.tensor([[22.0, 26.0], [42.0, 26.0], [33.0, 37.0], [24.0, 46.0], [41.0, 46.0]])


def tiny_config(vision_dim: int = D, **overrides) -> HeadConfig:
    vision = {"dim": vision_dim, "grid": GRID, "num_tokens": N, "image_size": SIZE}
    streams = historic(vision, {"dim": DA, "frame_seconds": FRAME_S}, overrides.get("modalities", "av"))
    sizes = dict(streams=streams, num_classes=C, d_model=d, roi_queries=8, temporal_layers=1, heads=2, cfc_units=d)
    return HeadConfig(**{**sizes, **overrides})


def make_batch(kinds: list[str], labels: torch.Tensor | None = None, signal: float = 0.0, seed: int = 0) -> dict:
    """A batch of clips of kind "av", "audio" (no video) or "video" (no audio), 2.0-3.2 s long, cache conventions.

    With `signal`, every video token and every valid audio frame is shifted by signal x a fixed random direction of
    the clip's class, so the label is learnable from either modality.
    """
    g = torch.Generator().manual_seed(seed)
    B = len(kinds)
    labels = torch.randint(0, C, (B,), generator=g) if labels is None else labels
    seconds = 2.0 + 1.2 * torch.rand(B, generator=g)  # (B,)
    frame_time = (torch.arange(T) + 0.5) / T * seconds[:, None]  # (B, T) uniform sampling, real seconds
    has_video = torch.tensor([k != "audio" for k in kinds])
    has_audio = torch.tensor([k != "video" for k in kinds])
    audio_length = torch.where(has_audio, (seconds / FRAME_S).long().clamp(max=TA), 0)  # (B,)

    direction = torch.randn(C, D, generator=torch.Generator().manual_seed(123))
    video = torch.randn(B, T, N, D, generator=g) + signal * direction[labels][:, None, None]  # (B, T, N, D)
    video = video * has_video[:, None, None, None]  # audio-only clips: all zero
    direction_a = torch.randn(C, DA, generator=torch.Generator().manual_seed(456))
    audio = torch.randn(B, TA, DA, generator=g) + signal * direction_a[labels][:, None]  # (B, Ta, Da)
    audio = audio * (torch.arange(TA) < audio_length[:, None])[..., None]  # zero padded

    landmarks = LANDMARKS + 2 * torch.randn(B, T, 5, 2, generator=g)  # (B, T, 5, 2) a little head motion
    landmarks[~has_video] = float("nan")  # no face at all
    face_found = has_video[:, None].expand(B, T).clone()
    return dict(video_tokens=video, landmarks=landmarks, face_found=face_found, has_video=has_video,
                has_audio=has_audio, frame_time=frame_time, audio_tokens=audio, audio_length=audio_length, label=labels)


MIXED = ["av", "av", "audio", "video", "av"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: toy tensors, one thread


# ---------------------------------------------------------------- ROI compressor


def test_roi_shapes_and_missing_faces_are_finite():
    torch.manual_seed(0)
    roi = RoiCompressor(D, d, GRID, SIZE, num_queries=8, heads=2).eval()
    batch = make_batch(["av", "audio"])
    out = roi(batch["video_tokens"], batch["landmarks"], batch["face_found"])
    assert out.shape == (2, T, 8, d)
    assert torch.isfinite(out).all()  # clip 1: NaN landmarks, no face anywhere
    # No usable landmarks = saliency only: NaN landmarks and "face not found" give the same output.
    tokens, lm = batch["video_tokens"][:1], batch["landmarks"][:1]
    no_face = roi(tokens, lm, torch.zeros(1, T, dtype=torch.bool))
    torch.testing.assert_close(roi(tokens, torch.full_like(lm, float("nan")), None), no_face)
    assert not torch.allclose(roi(tokens, lm, None), no_face)  # and the landmarks do matter when present


def test_roi_prior_peaks_at_landmarks():
    roi = RoiCompressor(D, d, GRID, SIZE, num_queries=8, heads=2)
    landmarks = LANDMARKS[None]  # (1, 5, 2)
    maps = roi.landmark_maps(landmarks, torch.tensor([True]))[0]  # (R, N)
    assert maps.shape == (len(REGIONS), N)
    points = roi.landmark_points(landmarks)[0]  # (R, 2): the 5 points, brows, mouth centre
    patch = SIZE / GRID
    for r, (x, y) in enumerate(points.tolist()):
        assert maps[r].argmax().item() == int(y // patch) * GRID + int(x // patch), REGIONS[r]
    torch.testing.assert_close(points[:5], LANDMARKS)
    assert (points[5:7, 1] < LANDMARKS[:2, 1]).all()  # brows above the eyes (y grows downwards)
    # Query 0 starts on the left eye: its prior peaks there; the last K//4 queries start with no prior at all.
    prior = roi.prior(landmarks, torch.tensor([True]))[0]  # (K, N)
    assert prior[0].argmax() == maps[0].argmax() and prior[0].max() > 1.0
    assert torch.equal(prior[-2:], torch.zeros(2, N))
    assert torch.equal(roi.prior(landmarks, torch.tensor([False])), torch.zeros(1, 8, N))


# ---------------------------------------------------------------- temporal encoder


def test_temporal_masks_and_all_masked_is_zero():
    torch.manual_seed(0)
    enc = TemporalEncoder(d, num_tokens=8, layers=2, heads=2).eval()
    tokens, time = torch.randn(3, T, 8, d), torch.linspace(0.2, 2.8, T).expand(3, T)
    mask = torch.ones(3, T, dtype=torch.bool)
    mask[1, 2:4] = False
    mask[2] = False  # a clip without video
    out = enc(tokens, time, mask)
    assert out.shape == (3, T, d) and torch.isfinite(out).all()
    assert torch.equal(out[2], torch.zeros(T, d)) and torch.equal(out[1, 2:4], torch.zeros(2, d))
    perturbed = tokens.clone()
    perturbed[1, 2:4] = 100.0  # masked frames must not leak into the others
    torch.testing.assert_close(enc(perturbed, time, mask), out)
    assert not torch.allclose(enc(tokens, time * 1.5, mask)[0], out[0])  # real timestamps matter


# ---------------------------------------------------------------- segment attention pooling


def test_segment_index_matches_midpoint_rule():
    frame_time = torch.tensor([[0.1, 0.5, 0.6, 2.0], [0.33, 0.95, 1.51, 2.13]])  # uneven gaps, no midpoint on a centre
    seg = segment_index(frame_time, TA, FRAME_S)  # (B, Ta)
    for b in range(2):
        t = frame_time[b].tolist()
        for j in range(TA):
            centre = (j + 0.5) * FRAME_S
            expected = sum(centre >= (t[i] + t[i + 1]) / 2 for i in range(len(t) - 1))
            assert seg[b, j].item() == expected


def test_segment_pool_masks_and_padding():
    torch.manual_seed(0)
    pool = SegmentAttentionPool(DA, d, FRAME_S, heads=2)
    torch.nn.init.normal_(pool.query)  # a non-trivial query, so the softmax really weights frames
    batch = make_batch(["av", "video", "av"])
    lengths = batch["audio_length"].clone()
    lengths[2] = 10  # 0.8 s of audio: the later segments are empty
    valid = torch.arange(TA) < lengths[:, None]  # (B, Ta)
    out, mask = pool(batch["audio_tokens"], valid, batch["frame_time"])
    assert out.shape == (3, T, d) and mask.shape == (3, T)
    assert mask[0].all() and not mask[1].any()  # zero-length audio: all segments empty
    assert torch.equal(out[1], torch.zeros(T, d))
    assert mask[2, 0] and not mask[2, -1] and torch.equal(out[2][~mask[2]], torch.zeros(int((~mask[2]).sum()), d))
    # Frames at or beyond audio_length do not count, whatever they hold (NaN included).
    perturbed = batch["audio_tokens"].clone()
    perturbed[2, 10:] = 5 * torch.randn(TA - 10, DA)
    perturbed[0, lengths[0]:] = float("nan")
    out2, mask2 = pool(perturbed, valid, batch["frame_time"])
    torch.testing.assert_close(out2, out)
    assert torch.equal(mask2, mask)
    # Inside the length, frames do count.
    perturbed[2, 0] += torch.randn(DA)  # (a constant shift would vanish in the input LayerNorm)
    assert not torch.allclose(pool(perturbed, valid, batch["frame_time"])[0][2, 0], out[2, 0])


# ---------------------------------------------------------------- CfC


def test_cfc_mask_keeps_state_and_timespans_matter():
    torch.manual_seed(0)
    cfc = CfC(5, 7, backbone_units=16)
    x, ts = torch.randn(2, T, 5), torch.rand(2, T) + 0.1
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[0, 2:4] = False
    states, final = cfc(x, ts, mask)
    assert states.shape == (2, T, 7) and final.shape == (2, 7)
    assert torch.equal(states[0, 2], states[0, 1]) and torch.equal(states[0, 3], states[0, 1])
    assert not torch.equal(states[0, 4], states[0, 3])
    _, none_used = cfc(x, ts, torch.zeros(2, T, dtype=torch.bool))
    assert torch.equal(none_used, torch.zeros(2, 7))  # nothing used: still the initial state
    _, other = cfc(x, ts * 3, mask)
    assert not torch.allclose(other, final)


def test_cfc_batch_equals_single_samples():
    """Catches the ncps bug class: each sample's gaps must act on that sample only."""
    torch.manual_seed(0)
    cfc = CfC(5, 7, backbone_units=16)
    x, ts = torch.randn(2, T, 5), torch.tensor([[0.1] * T, [2.0] * T])
    mask = torch.tensor([[True] * T, [True, False] * (T // 2)])
    states, _ = cfc(x, ts, mask)
    for b in range(2):  # within float32 noise: a batch of 2 and of 1 may take other matmul kernels (2 ulps seen)
        torch.testing.assert_close(cfc(x[b:b + 1], ts[b:b + 1], mask[b:b + 1])[0], states[b:b + 1],
                                   rtol=1e-5, atol=1e-5)


def test_cfc_cell_matches_ncps():
    ncps = pytest.importorskip("ncps.torch")
    torch.manual_seed(0)
    theirs = ncps.CfCCell(5, 7, backbone_units=16, backbone_layers=1)
    ours = CfCCell(5, 7, backbone_units=16, backbone_layers=1)
    ours.load_state_dict(theirs.state_dict())
    x, h, ts = torch.randn(3, 5), torch.randn(3, 7), torch.tensor([0.1, 1.0, 4.0])
    expected, _ = theirs(x, h, ts[:, None])  # (B, 1) gaps: the shape its own CfC layer fails to pass
    torch.testing.assert_close(ours(x, h, ts), expected)
    # Its sequence layer is right for batch size 1, and then agrees with ours.
    layer = ncps.CfC(5, 7, backbone_units=16, backbone_layers=1, return_sequences=True, batch_first=True)
    layer.rnn_cell.load_state_dict(theirs.state_dict())
    seq = CfC(5, 7, backbone_units=16)
    seq.cell.load_state_dict(theirs.state_dict())
    xs, tss = torch.randn(1, T, 5), torch.rand(1, T) + 0.1
    hs_theirs = []
    h = torch.zeros(1, 7)
    for t in range(T):
        h, _ = theirs(xs[:, t], h, tss[:, t, None])
        hs_theirs.append(h)
    torch.testing.assert_close(seq(xs, tss)[0], torch.stack(hs_theirs, 1))
    torch.testing.assert_close(layer(xs, timespans=tss)[1], seq(xs, tss)[1])


def test_since_last_update():
    time = torch.tensor([[0.5, 1.0, 1.5, 2.0, 2.5]])
    mask = torch.tensor([[False, True, False, False, True]])
    torch.testing.assert_close(since_last_update(time, mask), torch.tensor([[0.5, 1.0, 0.5, 1.0, 1.5]]))


# ---------------------------------------------------------------- fusion and the whole model


def test_modality_dropout_never_drops_both():
    torch.manual_seed(0)
    drop = ModalityDropout(1.0)
    audio = torch.tensor([True, True, False, True] * 25)[:, None].expand(100, T)
    video = torch.tensor([True, False, True, True] * 25)[:, None].expand(100, T)
    out = drop({"audio": audio, "video": video})
    a, v = out["audio"].any(1), out["video"].any(1)
    assert (a | v).all()  # never both
    both = audio.any(1) & video.any(1)
    assert not (a & v & both).any()  # p=1: every sample with both lost one
    assert torch.equal(a[~both], audio.any(1)[~both]) and torch.equal(v[~both], video.any(1)[~both])
    assert 0 < a[both].sum() < both.sum()  # either one can go
    drop.eval()
    assert drop({"audio": audio, "video": video})["audio"] is audio


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("modalities", MODES)
def test_every_fusion_and_modality(fusion, modalities):
    torch.manual_seed(0)
    model = DferHeads(tiny_config(fusion=fusion, modalities=modalities))
    batch = make_batch(MIXED)
    if modalities == "audio":  # an audio-only dataset has no video arrays at all
        batch = {k: v for k, v in batch.items() if k not in ("video_tokens", "landmarks", "face_found", "has_video")}
        assert not len(model.roi) and not len(model.temporal)
    if modalities == "video":
        batch = {k: v for k, v in batch.items() if k not in ("audio_tokens", "audio_length", "has_audio")}
        assert not len(model.pool)
    for mode in (model.train, model.eval):
        mode()
        out = model(batch)
        assert out["logits"].shape == (len(MIXED), C) and torch.isfinite(out["logits"]).all()
    if fusion == "late" and modalities == "av":
        assert out["logits_audio"].shape == out["logits_video"].shape == (len(MIXED), C)


def test_model_batch_equals_single_clips():
    torch.manual_seed(0)
    model = DferHeads(tiny_config()).eval()
    batch = make_batch(MIXED)
    together = model(batch)["logits"]
    for b in range(len(MIXED)):
        alone = model({k: v[b:b + 1] for k, v in batch.items()})["logits"]
        torch.testing.assert_close(alone, together[b:b + 1], rtol=1e-4, atol=1e-5)


def live_and_dead(name: str, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a gradient into (live, dead) parts: the key third of a packed nn.MultiheadAttention in_proj_bias is dead
    (q . b_k adds one constant to all of a query's logits), the only dead parameter the heads keep (see
    temporal.py and fusion.py)."""
    if name.endswith("in_proj_bias"):
        q, k, v = grad.chunk(3)
        return torch.cat([q, v]), k
    return grad.flatten(), grad.new_zeros(0)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("modalities", MODES)
def test_gradients_reach_every_parameter(fusion, modalities):
    """Every parameter that can change the output gets a gradient, and the only ones that cannot are known.

    In float64, at parameters moved off their initial values (zero-initialised ones, such as the saliency weight or
    a region-mix column no query starts on, sit where a gradient can vanish by symmetry), on clips of every kind.
    A live parameter's largest gradient is above 1e-3 here; a dead one's is float64 rounding noise, ~1e-16: 1e-8 lies
    far from both, so the test cannot pass or fail on how a CPU happens to round.
    """
    torch.manual_seed(0)
    model = DferHeads(tiny_config(fusion=fusion, modalities=modalities, modality_dropout=0.0)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch = {k: v.double() if v.is_floating_point() else v for k, v in make_batch(MIXED).items()}
    torch.nn.functional.cross_entropy(model(batch)["logits"], batch["label"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        live, dead = live_and_dead(name, p.grad.abs())
        assert live.max() > 1e-8, f"{name}: largest gradient {live.max():.1e}"
        assert dead.numel() == 0 or dead.max() < 1e-8, f"{name}: key bias gradient {dead.max():.1e}, thought dead"


def test_old_runs_with_a_saliency_bias_still_load():
    """Runs saved before the dead saliency bias was removed hold `roi.saliency.bias`: they still load, strictly."""
    torch.manual_seed(0)
    saved = DferHeads(tiny_config()).state_dict()
    old = {**saved, "roi.saliency.bias": torch.tensor([0.7])}  # any value: it was a constant on every logit
    loaded = DferHeads(tiny_config())
    loaded.load_state_dict(old)  # strict=True, and `old` is left as it was
    assert "roi.saliency.bias" in old
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saved.items())


# ---------------------------------------------------------------- video statistics: the compressor's projection


def video_summary(model: DferHeads, batch: dict) -> torch.Tensor:
    """(B, 2W) the video statistics summary `forward` hands the fusion, caught on its way out."""
    caught = []
    handle = model.statistics["video"].register_forward_hook(lambda module, args, out: caught.append(out))
    try:
        model(batch)
    finally:
        handle.remove()
    return caught[0]


def test_video_statistics_reuse_the_compressors_projection():
    """The raw D-wide patch tokens are projected once per forward, by the ROI compressor: the video statistics pool
    that projection (d wide), with no layer of their own on D. A second projection of all T x N tokens cost more
    than a third of a base-size head step (`bench/train.py`)."""
    torch.manual_seed(0)
    config = tiny_config(d_model=16, cfc_units=16, vision_dim=D_RAW)  # D != d, so a layer on D cannot pass for one on d
    model = DferHeads(config).eval()
    assert config.video_statistics == "projected"
    layers = [m for m in model.statistics["video"].modules() if isinstance(m, torch.nn.Linear)]
    assert layers and all(m.in_features == config.d_model for m in layers)
    on_raw = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.in_features == D_RAW]
    assert on_raw == [model.roi["video"].proj[1]]  # the only layer anywhere that reads D-wide tokens

    g = torch.Generator().manual_seed(7)
    batch = {**make_batch(MIXED), "video_tokens": torch.randn(len(MIXED), T, N, D_RAW, generator=g)}
    rows = []  # tokens projected from D wide in one forward (the layer's weights are applied by `project`)
    project = model.roi["video"].project
    model.roi["video"].project = lambda tokens: rows.append(tokens.shape[:-1].numel()) or project(tokens)
    summary = video_summary(model, batch)
    del model.roi["video"].project
    assert rows == [len(MIXED) * T * N]  # every patch token once, and only once

    # The summary is the statistics of the compressor's projection of the standardised tokens, valid frames only.
    mask = batch["has_video"][:, None] & batch["face_found"]  # (B, T)
    projected = model.roi["video"].project(model.standardise("video", batch, mask))  # (B, T, N, d)
    expected = model.statistics["video"](projected.flatten(1, 2), mask.repeat_interleave(N, 1))
    torch.testing.assert_close(summary, expected)

    # Old and new layout differ by one (D - d) x W block of weights: what the heads no longer carry.
    old = DferHeads(dataclasses.replace(config, video_statistics="tokens"))
    assert old.num_parameters() - model.num_parameters() == (D_RAW - config.d_model) * config.statistics_width


def test_projection_is_its_layernorm_and_linear():
    """`RoiCompressor.project` folds the LayerNorm's scale and shift into the Linear: the same outputs as the two
    modules applied in turn, and the same gradients for all four parameters and for the tokens (stage 3)."""
    torch.manual_seed(0)
    roi = RoiCompressor(vision_dim=24, d=8, grid=2, image_size=32, num_queries=4, heads=2)
    with torch.no_grad():  # LayerNorm starts as (1, 0): move it off that, or its fold is trivially right
        roi.proj[0].weight.uniform_(0.5, 1.5)
        roi.proj[0].bias.normal_()
    tokens = torch.randn(2, 3, 4, 24, requires_grad=True)  # (B, T, N, D)
    probe = torch.randn(2, 3, 4, 8)  # (B, T, N, d)
    grads = []
    for forward in (roi.project, roi.proj):
        roi.zero_grad()
        tokens.grad = None
        out = forward(tokens)
        (out * probe).sum().backward()
        grads.append([out.detach(), tokens.grad] + [p.grad for p in roi.proj.parameters()])
    for folded, plain in zip(*grads):
        torch.testing.assert_close(folded, plain)


def test_video_statistics_count_only_frames_with_a_face():
    """has_video & face_found: frames without a face, and clips without video, do not move the video summary,
    whatever their tokens hold; a frame with a face does."""
    torch.manual_seed(0)
    model = DferHeads(tiny_config(d_model=16, cfc_units=16)).eval()
    batch = make_batch(MIXED)
    batch["face_found"][0, 2:4] = False  # clip 0 loses its face in two frames
    batch["has_video"][4] = False  # clip 4: "no video", though its arrays hold tokens and face flags
    with torch.no_grad():
        before = video_summary(model, batch)
        changed = batch["video_tokens"].clone()
        changed[0, 2:4] += 10.0 * torch.randn_like(changed[0, 2:4])
        changed[4] += 10.0 * torch.randn_like(changed[4])
        torch.testing.assert_close(video_summary(model, {**batch, "video_tokens": changed}), before)
        assert torch.equal(before[[2, 4]], torch.zeros_like(before[[2, 4]]))  # no valid frame: zeros
        changed[0, 0] += torch.randn_like(changed[0, 0])  # a frame with a face (not a constant: LayerNorm hides it)
        after = video_summary(model, {**batch, "video_tokens": changed})
    assert not torch.allclose(after[0], before[0]) and torch.equal(after[1:], before[1:])


def test_old_runs_pool_video_statistics_of_the_raw_tokens(tmp_path):
    """A run saved before the video statistics read the compressor's projection has no `video_statistics` in its
    config.json and a D-wide `statistics.video` layer in its weights: it loads (strictly) into the layout it was
    trained with, and gives the same logits, through `load_run` as `dfer evaluate` / `predict` / `finetune` do."""
    from safetensors.torch import save_file

    from dfer.runs.load import load_run

    torch.manual_seed(0)
    config = tiny_config(d_model=16, cfc_units=16, vision_dim=D_RAW)
    saved = DferHeads(dataclasses.replace(config, video_statistics="tokens")).eval()
    assert saved.statistics["video"].frame[0].in_features == D_RAW
    old_heads = {k: v for k, v in config.to_dict().items() if k != "video_statistics"}  # as old runs wrote it
    (tmp_path / "config.json").write_text(json.dumps({"heads": old_heads}))
    save_file({k: v.contiguous() for k, v in saved.state_dict().items()}, str(tmp_path / "best.safetensors"))

    loaded, _ = load_run(tmp_path)
    assert loaded.config.video_statistics == "tokens" and loaded.config == saved.config
    g = torch.Generator().manual_seed(7)
    batch = {**make_batch(MIXED), "video_tokens": torch.randn(len(MIXED), T, N, D_RAW, generator=g)}
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch)["logits"], saved(batch)["logits"], rtol=0, atol=0)
        # ... and its video summary is of the standardised raw tokens, as it was trained.
        mask = batch["has_video"][:, None] & batch["face_found"]  # (B, T)
        video = loaded.standardise("video", batch, mask)  # (B, T, N, D)
        expected = loaded.statistics["video"](video.flatten(1, 2), mask.repeat_interleave(N, 1))
        torch.testing.assert_close(video_summary(loaded, batch), expected)
    with pytest.raises(RuntimeError, match="size mismatch"):  # the new layout cannot hold the old weights
        DferHeads(config).load_state_dict(saved.state_dict())
    # Older still: no statistics pooling at all (no `statistics_width` either).
    older = {k: v for k, v in old_heads.items() if k != "statistics_width"}
    assert HeadConfig.from_dict(older).statistics_width == 0


def test_config_round_trips_through_json():
    config = tiny_config(fusion="gated", modalities="video")
    assert HeadConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown HeadConfig fields"):
        HeadConfig.from_dict({**config.to_dict(), "typo": 1})
    with pytest.raises(ValueError, match="fusion"):
        tiny_config(fusion="sum")
    with pytest.raises(ValueError, match="grid"):
        Stream("video", "face", D, grid=GRID, num_tokens=15)
    with pytest.raises(ValueError, match="video_statistics"):
        tiny_config(video_statistics="raw")
    for video_statistics in ("projected", "tokens"):  # a run saved now keeps what it chose
        config = tiny_config(video_statistics=video_statistics)
        assert HeadConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("fusion", FUSIONS)
def test_learns_a_synthetic_task(fusion):
    torch.manual_seed(0)
    model = DferHeads(tiny_config(fusion=fusion))
    labels = torch.arange(32) % C
    batch = make_batch(["av"] * 24 + ["audio"] * 4 + ["video"] * 4, labels, signal=0.5, seed=1)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(batch)["logits"], labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(batch)["logits"].argmax(-1) == labels).float().mean().item()
    assert accuracy > 0.75, f"{fusion}: training accuracy {accuracy:.2f} (chance {1 / C:.2f})"


def test_tracked_input_statistics_follow_valid_tokens_only_while_training():
    """Stage 3's running statistics: a shared offset of the tokens is absorbed, padding and clips without the stream
    never count, evaluation and stage 2 (momentum 0) leave the statistics as they are."""
    model = DferHeads(tiny_config()).train()
    batch = make_batch(MIXED)
    batch["video_tokens"] = batch["video_tokens"] + 5.0
    batch["audio_tokens"] = torch.where(torch.arange(TA)[None, :, None] < batch["audio_length"][:, None, None],
                                        batch["audio_tokens"] + 5.0, float("nan"))  # padding: NaN, never read
    model(batch)
    assert model.video_mean.abs().max() == 0 and model.audio_mean.abs().max() == 0  # momentum 0: fixed

    model.track_input_statistics(1.0)  # the statistics become this batch's
    model(batch)
    assert torch.isfinite(model.audio_mean).all() and torch.isfinite(model.audio_std).all()
    torch.testing.assert_close(model.audio_mean, torch.full((DA,), 5.0), atol=0.4, rtol=0)  # 120 frames: +-0.1
    torch.testing.assert_close(model.video_mean, torch.full((D,), 5.0), atol=0.25, rtol=0)  # zeros counted: 4.0
    torch.testing.assert_close(model.video_std, torch.ones(D), atol=0.2, rtol=0)

    before = model.audio_mean.clone()
    model.eval()(make_batch(MIXED, seed=1))
    assert torch.equal(model.audio_mean, before)
