"""Explanations respond to the input and come from the model's own attention and masks: the ROI attention is the
forward's, a head trained where only the mouth is informative looks at the mouth, hiding the face moves the video-only
answer and not the audio-only one, masking a step equals that step being invalid; `dfer explain`, `predict
--explain` and `/predict?explain=true` write / return it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dfer.cli import app
from dfer.heads import FUSIONS, DferHeads, HeadConfig
from dfer.streams import historic
from dfer.predict.explain import HEAT, ZEROSHOT_HEAT, Explanation, explain_batch, explain_file
from dfer.predict.explain_figure import CROP_LABEL, PER_ROW, explanation_figure
from dfer.predict.predictor import OutputStems
from dfer.testing.sample import SAMPLE
from dfer.serve.app import create_app

CLIP = sorted((SAMPLE / "VideoFlash").glob("*.flv"))[0]
# Toy sizes: a 4x4 grid on 64 px crops (the `tiny` vision preset), 6 frames, 3 classes.
D, GRID, SIZE, T, C = 16, 4, 64, 6, 3
N = GRID * GRID
# (5, 2) a frontal face in a 64 px crop: eyes on patch row 1, mouth corners on row 2 (y = 46 px, columns 1 and 2)
LANDMARKS = torch.tensor([[22.0, 26.0], [42.0, 26.0], [33.0, 37.0], [24.0, 46.0], [41.0, 46.0]])
MOUTH = [2 * GRID + 1, 2 * GRID + 2]  # the patches holding the mouth corners
CORNER = [0, 1]  # top-left patches, far from every landmark


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: toy tensors, one thread


def video_heads(**overrides) -> DferHeads:
    """A video-only head whose only way to the label is the ROI compressor (no statistics pooling beside it)."""
    vision = {"dim": D, "grid": GRID, "num_tokens": N, "image_size": SIZE}
    streams = historic(vision, {"dim": 8, "frame_seconds": 0.08}, overrides.get("modalities", "video"))
    config = dict(streams=streams, num_classes=C, d_model=16, roi_queries=4, temporal_layers=1, heads=2, cfc_units=16,
                  dropout=0.0, statistics_width=0, fusion="concat", modalities="video")
    return DferHeads(HeadConfig(**{**config, **overrides}))


def tokens_informative_at(patches: list[int], labels: torch.Tensor, seed: int = 0) -> dict:
    """Noise tokens, plus a class direction at `patches` only: the label is readable there and nowhere else."""
    g = torch.Generator().manual_seed(seed)
    B = len(labels)
    video = torch.randn(B, T, N, D, generator=g)  # (B, T, N, D)
    direction = torch.randn(C, D, generator=torch.Generator().manual_seed(1))  # (C, D)
    video[:, :, patches] += 2.0 * direction[labels][:, None, None]
    return dict(video_tokens=video, landmarks=LANDMARKS.expand(B, T, 5, 2).clone(),
                face_found=torch.ones(B, T, dtype=torch.bool), has_video=torch.ones(B, dtype=torch.bool),
                frame_time=(torch.arange(T) + 0.5).expand(B, T) / T * 2.0, label=labels)


def trained_on(patches: list[int]) -> DferHeads:
    torch.manual_seed(0)
    model = video_heads()
    labels = torch.arange(24) % C
    batch = tokens_informative_at(patches, labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = F.cross_entropy(model(batch)["logits"], labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def attention_mass(model: DferHeads, informative: list[int], patches: list[int]) -> float:
    """Mean attention (over heads, queries and frames) per patch of `patches`, on fresh clips informative where the
    model was trained."""
    batch = tokens_informative_at(informative, torch.arange(6) % C, seed=2)
    with torch.no_grad():
        weights = model.roi_attention(batch).weights  # (B, T, h, K, N)
    return weights.mean((0, 1, 2, 3))[patches].mean().item()


def test_attention_is_what_the_forward_applies(monkeypatch):
    """The weights `roi_attention` returns are the softmax of the very logits the forward hands to SDPA."""
    model = video_heads().eval()
    batch = tokens_informative_at(MOUTH, torch.arange(2))
    seen = []
    sdpa = F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kwargs):
        seen.append((q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + attn_mask).softmax(-1))  # (BT, h, K, N)
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    with torch.no_grad():
        model(batch)
        weights = model.roi_attention(batch).weights  # (B, T, h, K, N)
    torch.testing.assert_close(weights.flatten(0, 1), seen[0])
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


def test_attention_peaks_where_the_label_is():
    """Trained where only the mouth carries the label, the compressor reads the mouth more than any other patch and
    more than a twin trained on the top-left corner does; the twin reads its corner more than the mouth model does.
    With 4 queries the landmark prior starts 3 of them on the eyes and nose, none on the mouth: this is learned."""
    mouth, corner = trained_on(MOUTH), trained_on(CORNER)
    elsewhere = [n for n in range(N) if n not in MOUTH]
    assert attention_mass(mouth, MOUTH, MOUTH) > 1.5 * attention_mass(mouth, MOUTH, elsewhere)
    assert attention_mass(mouth, MOUTH, MOUTH) > 1.2 * attention_mass(corner, CORNER, MOUTH)
    assert attention_mass(corner, CORNER, CORNER) > 1.2 * attention_mass(mouth, MOUTH, CORNER)


def test_masking_a_step_is_that_step_being_invalid():
    """keep_steps masks step t as a clip whose frame t has no face is masked, and the explanation's steps say so:
    a step without a face changes nothing when masked."""
    model = trained_on(MOUTH)
    batch = tokens_informative_at(MOUTH, torch.tensor([1]))
    keep = torch.ones(1, T, dtype=torch.bool)
    keep[0, 2] = False
    faceless = {**batch, "face_found": keep.clone()}
    with torch.no_grad():
        torch.testing.assert_close(model(batch, keep_steps=keep)["logits"], model(faceless)["logits"])
    explanation, _ = explain_batch(model, faceless, ["a", "b", "c"])
    steps = explanation["steps"]
    assert [s["video"] for s in steps] == keep[0].tolist()
    assert steps[2]["shift"] == 0 and all(s["shift"] > 0 for i, s in enumerate(steps) if i != 2)


def test_masking_trailing_steps_is_the_audio_ending_before_them():
    """On audio, keep_steps masks the frames of the masked steps' segments: masking the last two steps is the same
    as a clip whose audio ends where segment T-2 begins (as `audio_length` marks it in the store)."""
    torch.manual_seed(0)
    model = video_heads(modalities="audio", statistics_width=8).eval()
    frame_time = (torch.arange(T) + 0.5)[None] / T * 2.0  # (1, T) seconds
    batch = dict(audio_tokens=torch.randn(1, 25, 8), audio_length=torch.tensor([25]),
                 has_audio=torch.tensor([True]), frame_time=frame_time)
    keep = torch.ones(1, T, dtype=torch.bool)
    keep[0, -2:] = False
    start = (frame_time[0, -3] + frame_time[0, -2]) / 2  # seconds: segment T-2 begins at the midpoint
    ended = {**batch, "audio_length": torch.tensor([int(torch.ceil(start / 0.08 - 0.5))])}  # frames centred before
    with torch.no_grad():
        masked, short = model(batch, keep_steps=keep), model(ended)
    torch.testing.assert_close(masked["logits"], short["logits"])
    assert masked["mask_audio"][0].tolist() == [True] * (T - 2) + [False] * 2 == short["mask_audio"][0].tolist()


def test_a_one_stream_run_says_what_is_available():
    explanation, arrays = explain_batch(video_heads().eval(), tokens_informative_at(MOUTH, torch.tensor([0])),
                                        ["a", "b", "c"])
    assert explanation["av"] is None and explanation["audio"] is None and set(explanation["video"]) == {"a", "b", "c"}
    assert explanation["available"] == ["video"] and "video-only run" in explanation["notes"][0]
    assert arrays["attention"].shape == (T, GRID, GRID) and explanation["attention"]["grid"] == GRID


def test_removing_the_face_moves_video_only_and_not_audio_only(predictor):
    """The sample run's AV checkpoint: `av` is what predict says; with no face frames the video-only answer changes
    and the audio-only one does not (the video is hidden there exactly as modality dropout hides it)."""
    encoded = predictor.encode_clip(CLIP, predictor.decode(CLIP)[0])
    batch = predictor.batch_of(encoded.row)
    with_face, _ = explain_batch(predictor.heads, batch, predictor.labels)
    without, _ = explain_batch(predictor.heads, {**batch, "face_found": torch.zeros_like(batch["face_found"])},
                               predictor.labels)
    np.testing.assert_allclose(list(with_face["av"].values()), predictor.predict_file(CLIP)["probs"], atol=1e-5)
    np.testing.assert_allclose(list(without["audio"].values()), list(with_face["audio"].values()), atol=1e-6)
    assert np.abs(np.subtract(list(without["video"].values()), list(with_face["video"].values()))).max() > 1e-3
    assert with_face["present"] == {"audio": True, "video": True} and not with_face["notes"]
    assert without["present"]["video"] is False and "no video step" in without["notes"][0]
    assert not any(step["video"] for step in without["steps"])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_hides_a_stream_completely(fusion):
    """Whatever the fusion, the audio-only answer ignores the video tokens and the video-only one the audio tokens."""
    torch.manual_seed(0)
    model = video_heads(fusion=fusion, modalities="av").eval()
    batch = {**tokens_informative_at(MOUTH, torch.tensor([1])), "audio_tokens": torch.randn(1, 25, 8),
             "audio_length": torch.tensor([25]), "has_audio": torch.tensor([True])}
    other_face = {**batch, "video_tokens": torch.randn(batch["video_tokens"].shape)}
    other_voice = {**batch, "audio_tokens": torch.randn(batch["audio_tokens"].shape)}
    base, face, voice = (explain_batch(model, b, ["a", "b", "c"])[0] for b in (batch, other_face, other_voice))
    assert face["audio"] == base["audio"] and voice["video"] == base["video"]
    assert face["video"] != base["video"] and voice["audio"] != base["audio"]


def test_dfer_explain_writes_png_and_json(predictor, tmp_path):
    result = CliRunner().invoke(app, ["explain", str(CLIP), "--model", str(predictor.run), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    png, record = tmp_path / f"{CLIP.stem}.explain.png", tmp_path / f"{CLIP.stem}.explain.json"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    facts = json.loads(record.read_text())["explain"]
    assert {"av", "audio", "video"} <= set(facts) and set(facts["av"]) == set(predictor.labels)
    assert len(facts["steps"]) == predictor.frames and len(facts["attention"]["frames"]) == predictor.frames
    width, height = Image.open(png).size  # one row of crops (sample_run: 4 frames), each at least 112 px
    assert width >= 112 * min(predictor.frames, PER_ROW) and height >= 112


MIN_CROP = 112  # pixels a face crop is drawn at, at least: landmarks and patch cells stay readable


def drawn(explanation: Explanation):
    """The explanation's figure, laid out as its PNG is (so axes have their pixel sizes), and its crop axes."""
    figure = explanation_figure(explanation)
    figure.canvas.draw()
    return figure, [ax for ax in figure.get_axes() if ax.get_label() == CROP_LABEL]


def colour_bar_label(figure) -> str:
    return next(ax.get_ylabel() for ax in figure.get_axes() if ax.get_label() == "<colorbar>")


def legend_texts(figure) -> list[str]:
    return [text.get_text() for sub in figure.subfigs for legend in sub.legends for text in legend.get_texts()]


def test_the_picture_names_the_class_and_keys_its_marks(predictor):
    """The sample run's picture: every crop at least 112 px square, a title with the predicted class's probability
    from each input by name, a colour bar saying the heat is the ROI attention, a legend for the prior and the
    landmarks."""
    explanation = explain_file(predictor, CLIP)
    record = explanation.record
    top, info = record["top1"], record["explain"]
    figure, crops = drawn(explanation)
    assert len(crops) == predictor.frames and top in predictor.labels  # the display name, not the store's code
    assert all(min(ax.get_window_extent().width, ax.get_window_extent().height) >= MIN_CROP for ax in crops)
    assert figure.get_suptitle() == (f"p({top}): audio + video {info['av'][top]:.2f} · audio only "
                                     f"{info['audio'][top]:.2f} · video only {info['video'][top]:.2f}")
    assert colour_bar_label(figure) == HEAT
    legend = legend_texts(figure)
    assert len(legend) == 2 and legend[0].startswith("landmark prior") and legend[1].startswith("landmarks")


def synthetic(steps: int, available: list[str], faces: bool = True, zero_shot: bool = False) -> Explanation:
    """An explanation of `steps` steps as `explain_file` returns it, with random crops and heat: layouts the sample
    run (4 frames, two streams, heads) does not reach."""
    rng = np.random.default_rng(0)
    labels = ["angry", "fearful", "happy"]
    answer = {label: 1 / 3 for label in labels}
    info = {**{key: answer if key in available else None for key in ("av", "audio", "video")},
            "available": available, "steps": [{"time": 0.1 * t, "top1_drop": 0.0, "shift": 0.1} for t in range(steps)]}
    record = {"path": "clip.mp4", "top1": "fearful", "explain": info}
    if not faces:
        return Explanation(record, None, None, None, None)
    heat = rng.dirichlet(np.ones(GRID * GRID), steps).reshape(steps, GRID, GRID)  # (T, g, g), each frame sums to 1
    return Explanation(record, rng.integers(0, 256, (steps, 3, SIZE, SIZE), dtype=np.uint8),
                       LANDMARKS.expand(steps, 5, 2).numpy(), heat, np.zeros_like(heat) if zero_shot else heat,
                       ZEROSHOT_HEAT if zero_shot else HEAT)


def test_sixteen_crops_are_two_rows_of_eight():
    figure, crops = drawn(synthetic(16, ["av", "audio", "video"]))
    rows = sorted({round(ax.get_window_extent().y0) for ax in crops})
    assert len(crops) == 16 and len(rows) == 2
    assert all(min(ax.get_window_extent().width, ax.get_window_extent().height) >= MIN_CROP for ax in crops)


def test_a_zero_shot_picture_says_its_heat_is_evidence_and_has_no_prior():
    figure, _ = drawn(synthetic(4, ["video"], zero_shot=True))
    assert figure.get_suptitle() == "p(fearful): video only 0.33"
    assert colour_bar_label(figure) == ZEROSHOT_HEAT
    assert legend_texts(figure) == ["landmarks (eyes, nose, mouth corners)"]  # the prior's contours are not drawn


def test_an_audio_only_picture_has_no_crops_and_no_video_answer():
    figure, crops = drawn(synthetic(4, ["audio"], faces=False))
    assert not crops and figure.get_suptitle() == "p(fearful): audio only 0.33"
    assert not any(ax.get_label() == "<colorbar>" for ax in figure.get_axes())


def test_predict_explain_adds_the_explanation_to_each_line(predictor, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(CLIP), "--model", str(predictor.run), "--json",
                                      "--explain", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record["explain"]["available"]) == {"av", "audio", "video"}
    assert Path(record["explain_files"]["png"]).exists() and Path(record["explain_files"]["json"]).exists()


def test_outputs_with_one_stem_do_not_overwrite_each_other(predictor, tmp_path):
    """a/x.flv and b/x.flv explained into one folder: x and x-2, each its own file's (the namer `--timeline` uses)."""
    clips = sorted((SAMPLE / "VideoFlash").glob("*.flv"))[:2]
    named = []
    for folder, clip in zip("ab", clips):
        (tmp_path / folder).mkdir()
        named.append(tmp_path / folder / "x.flv")
        named[-1].write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", *map(str, named), "--model", str(predictor.run), "--json",
                                      "--explain", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["explain_files"]["json"]).name for r in records] == ["x.explain.json", "x-2.explain.json"]
    assert sorted(p.name for p in out.iterdir()) == ["x-2.explain.json", "x-2.explain.png", "x.explain.json",
                                                     "x.explain.png"]
    for record, clip in zip(records, named):
        assert json.loads(Path(record["explain_files"]["json"]).read_text())["path"] == str(clip)
    stems = OutputStems()
    assert [stems(p) for p in ["a/x.mp4", "b/x.mp4", "x-2.mp4", "c/x.mp4"]] == ["x", "x-2", "x-2-2", "x-3"]


def test_serve_explains_when_asked(predictor):
    with TestClient(create_app(predictor)) as client:
        files = {"file": (CLIP.name, CLIP.read_bytes(), "video/x-flv")}
        plain = client.post("/predict", files=files)
        explained = client.post("/predict", params={"explain": "true"}, files=files)
    assert plain.status_code == 200 and plain.json()["explain"] is None
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert set(body["explain"]["video"]) == set(body["labels"]) and body["explain"]["present"]["video"]
    faces = body["explain"]["faces"]  # the crops the page draws the attention over
    assert len(faces) == len(body["explain"]["steps"]) and all(face.startswith("data:image/jpeg;") for face in faces)
    np.testing.assert_allclose(list(body["explain"]["av"].values()), body["probs"], atol=1e-6)
    assert explain_file(predictor, CLIP).record["explain"]["audio"] == pytest.approx(body["explain"]["audio"],
                                                                                   abs=1e-5)
