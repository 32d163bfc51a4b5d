"""Streams as data (`dfer.streams`): selections, heads over any set of streams, and runs saved before streams were data
loading as the same model."""

from __future__ import annotations

import json

import pytest
import torch

from dfer.heads import FUSIONS, DferHeads, HeadConfig, LinearProbe
from dfer.heads.fusion import ModalityDropout
from dfer.streams import Stream, check_modalities, historic, mode_of, read_by, select

T, N, GRID, SIZE, C = 5, 4, 2, 32, 3
VIDEO = Stream("video", "face", 12, GRID, N, SIZE)
AUDIO = Stream("audio", "waveform", 10, frame_seconds=0.08)
PROSODY = Stream("prosody", "waveform", 6, frame_seconds=0.01)
THREE = (AUDIO, PROSODY, VIDEO)  # name order
ACTIONS = Stream("actions", "frame", 9)  # a vector per frame, as face actions' (58-d) are
FOUR = (ACTIONS, *THREE)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: toy tensors, one thread


def batch_of(streams, has_video: list[bool], has_audio: list[bool], seed: int = 0) -> dict:
    """Clips of 2 s with the given inputs; each sequence stream's tokens at its own rate."""
    g = torch.Generator().manual_seed(seed)
    B = len(has_video)
    has_video, has_audio = torch.tensor(has_video), torch.tensor(has_audio)
    batch = {"frame_time": ((torch.arange(T) + 0.5) / T * 2.0).expand(B, -1), "has_video": has_video,
             "has_audio": has_audio, "face_found": has_video[:, None].expand(B, T).clone(),
             "landmarks": torch.full((B, T, 5, 2), SIZE / 2) + torch.randn(B, T, 5, 2, generator=g)}
    for stream in streams:
        if stream.tokens == "grid":
            batch[f"{stream.name}_tokens"] = torch.randn(B, T, stream.num_tokens, stream.dim, generator=g)
        elif stream.tokens == "vector":  # its encoder missed the face on every third frame
            batch[f"{stream.name}_tokens"] = torch.randn(B, T, stream.dim, generator=g)
            batch[f"{stream.name}_found"] = has_video[:, None] & (torch.arange(T) % 3 != 1)
        else:
            frames = round(2.0 / stream.frame_seconds)
            batch[f"{stream.name}_tokens"] = torch.randn(B, frames, stream.dim, generator=g)
            batch[f"{stream.name}_length"] = torch.where(has_audio, frames, 0)
    return batch


def config(streams=THREE, **overrides) -> HeadConfig:
    sizes = dict(num_classes=C, d_model=16, roi_queries=4, temporal_layers=1, heads=2, cfc_units=16,
                 statistics_width=4, modalities=",".join(stream.name for stream in streams))
    return HeadConfig(streams=streams, **{**sizes, **overrides})


def test_a_selection_names_streams_by_input_or_by_name():
    assert select(THREE, "av") == THREE
    assert select(THREE, "audio") == (AUDIO, PROSODY)  # every stream of the waveform
    assert select(THREE, "video") == (VIDEO,)
    assert select(THREE, "video, prosody") == (PROSODY, VIDEO)  # name order, whatever the order asked
    with pytest.raises(ValueError, match="choose av, audio, video or stream names among audio, prosody, video"):
        select(THREE, "speech")
    with pytest.raises(ValueError, match="reads face"):
        select((AUDIO,), "video")
    with pytest.raises(ValueError, match="lower-case"):
        check_modalities("Audio,video")
    with pytest.raises(ValueError, match="grid"):
        Stream("video", "face", 8, grid=3, num_tokens=8)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_heads_over_three_streams_run_every_fusion_and_train_every_parameter(fusion):
    torch.manual_seed(0)
    model = DferHeads(config(fusion=fusion))
    assert model.streams == ("audio", "prosody", "video")
    assert set(model.roi) == {"video"} and set(model.pool) == {"audio", "prosody"}
    batch = batch_of(THREE, [True, True, False, True], [True, False, True, True])
    out = model.train()(batch)
    assert out["logits"].shape == (4, C) and torch.isfinite(out["logits"]).all()
    assert not out["mask_video"][2].any() and not out["mask_prosody"][1].any()  # a missing input masks its streams
    out["logits"].sum().backward()
    idle = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not idle, idle


def test_three_streams_answer_a_batch_as_they_answer_each_clip():
    torch.manual_seed(0)
    model = DferHeads(config(fusion="xattn")).eval()
    batch = batch_of(THREE, [True, False, True], [True, True, False])
    with torch.no_grad():
        together = model(batch)["logits"]
        alone = torch.cat([model({k: v[i:i + 1] for k, v in batch.items()})["logits"] for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_hiding_a_stream_is_reading_a_clip_without_it():
    """`hide` (what explanations and modality dropout use) masks one stream; the others' answer does not depend on
    that stream's tokens any more."""
    torch.manual_seed(0)
    model = DferHeads(config(fusion="liquid")).eval()
    batch = batch_of(THREE, [True, True], [True, True])
    hide = {"prosody": torch.tensor([True, False])}
    changed = {**batch, "prosody_tokens": batch["prosody_tokens"] + 5.0}
    with torch.no_grad():
        before, after = model(batch, hide=hide)["logits"], model(changed, hide=hide)["logits"]
    torch.testing.assert_close(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


def test_modality_dropout_hides_one_present_stream_and_never_all():
    drop = ModalityDropout(1.0).train()
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.bool)  # (B, M)
    masks = {name: present[:, i, None].expand(-1, T) for i, name in enumerate(("audio", "prosody", "video"))}
    for seed in range(20):
        torch.manual_seed(seed)
        kept = torch.stack([out.any(1) for out in drop(masks).values()], -1)  # (B, M)
        assert not (kept & ~present).any()
        assert (present.sum(1) - kept.sum(1)).tolist() == [1, 1, 0, 0]  # one hidden where there were two or more


def test_modality_dropout_of_two_streams_draws_as_it_always_did():
    """The historic rule, hide audio or video 50/50 where a clip has both, with the same random draws: runs of the two
    historic streams train to the same weights as before streams were data."""
    B = 64
    g = torch.Generator().manual_seed(1)
    audio, video = torch.rand(B, T, generator=g) < 0.7, torch.rand(B, T, generator=g) < 0.7
    torch.manual_seed(5)
    now = ModalityDropout(0.5).train()({"audio": audio, "video": video})
    torch.manual_seed(5)
    both = audio.any(1) & video.any(1)
    dropped = both & (torch.rand(B) < 0.5)
    drop_audio = torch.rand(B) < 0.5
    assert torch.equal(now["audio"], audio & ~(dropped & drop_audio)[:, None])
    assert torch.equal(now["video"], video & ~(dropped & ~drop_audio)[:, None])


def test_a_run_saved_before_streams_were_data_loads_as_the_same_model():
    """Its config.json has the two encoders' sizes and a mode; its weights the modules' names of then."""
    vision = {"dim": VIDEO.dim, "grid": GRID, "num_tokens": N, "image_size": SIZE}
    audio = {"dim": AUDIO.dim, "frame_seconds": AUDIO.frame_seconds}
    torch.manual_seed(0)
    model = DferHeads(config(historic(vision, audio), modalities="av")).eval()
    old_config = {key: value for key, value in model.config.to_dict().items() if key != "streams"}
    old_config.update(vision_dim=VIDEO.dim, num_tokens=N, grid=GRID, image_size=SIZE, audio_dim=AUDIO.dim,
                      audio_frame_seconds=AUDIO.frame_seconds)
    renames = {"roi.video.": "roi.", "temporal.video.": "temporal.", "pool.audio.": "audio_pool."}
    old_weights = {}
    for key, value in model.state_dict().items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        old_weights[key if prefix is None else renames[prefix] + key[len(prefix):]] = value
    assert "audio_pool.to_k.weight" in old_weights and "roi.proj.1.weight" in old_weights

    loaded = DferHeads(HeadConfig.from_dict(json.loads(json.dumps(old_config)))).eval()
    assert loaded.config == model.config
    loaded.load_state_dict(old_weights)  # strict
    batch = batch_of(model.config.streams, [True, False], [True, True])
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch)["logits"], model(batch)["logits"], rtol=0, atol=0)
    assert read_by(old_config) == ("audio", "video") and read_by(model.config.to_dict()) == ("audio", "video")


def test_a_probe_reads_any_streams_and_probes_saved_before_load():
    probe = LinearProbe(THREE, C, "av")
    batch = batch_of(THREE, [True, False], [True, True])
    features, present = probe.pooled(batch)
    assert features.shape == (2, 2 * (AUDIO.dim + PROSODY.dim + VIDEO.dim))
    assert present[1, -2 * VIDEO.dim:].logical_not().all() and present[1, :2 * AUDIO.dim].all()
    assert LinearProbe.from_config(json.loads(json.dumps(probe.config))).config == probe.config
    old = LinearProbe.from_config({"modalities": "audio", "vision_dim": 7, "audio_dim": 5, "num_classes": C})
    assert old.streams == ("audio",) and old.widths == {"audio": 10}


def test_a_frame_stream_is_video_and_its_own_token_kind():
    assert ACTIONS.tokens == "vector"
    assert select(FOUR, "video") == (ACTIONS, VIDEO) and select(FOUR, "av") == FOUR
    assert select(FOUR, "audio") == (AUDIO, PROSODY)
    assert [mode_of(inputs) for inputs in ({"frame"}, {"face", "frame"}, {"frame", "waveform"}, {"face", "waveform"},
                                           {"waveform"})] == ["video", "video", "av", "av", "audio"]
    assert Stream.of_encoder("actions", "actions", {"id": "mediapipe", "dim": 58, "points": 478}) == \
        Stream("actions", "frame", 58)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_heads_read_a_vector_stream_on_the_frames_its_encoder_read(fusion):
    """Every parameter trains; a frame where the face was not read (`actions_found` False) is never read: its tokens
    change nothing; the stream's steps are those frames."""
    torch.manual_seed(0)
    model = DferHeads(config(FOUR, fusion=fusion))
    assert set(model.proj) == {"actions"} and set(model.roi) == {"video"} and "actions" in model.temporal
    batch = batch_of(FOUR, [True, True, False], [True, False, True])
    out = model.train()(batch)
    out["logits"].sum().backward()
    idle = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not idle, idle
    model.eval()
    missed = ~batch["actions_found"]
    changed = {**batch, "actions_tokens": batch["actions_tokens"] + 9.0 * missed[..., None]}
    with torch.no_grad():
        out = model(batch)
        torch.testing.assert_close(model(changed)["logits"], out["logits"], rtol=0, atol=0)
        alone = torch.cat([model({k: v[i:i + 1] for k, v in batch.items()})["logits"] for i in range(3)])
    assert torch.equal(out["mask_actions"], batch["actions_found"])
    torch.testing.assert_close(out["logits"], alone, rtol=1e-5, atol=1e-5)


def test_a_probe_pools_a_vector_stream_over_the_frames_read():
    probe = LinearProbe(FOUR, C, "av")
    batch = batch_of(FOUR, [True, False], [True, True])
    features, present = probe.pooled(batch)
    found = batch["actions_found"][0]
    tokens = batch["actions_tokens"][0, found]  # (T_found, D)
    torch.testing.assert_close(features[0, :2 * ACTIONS.dim], torch.cat([tokens.mean(0), tokens.std(0, unbiased=False)]))
    assert not present[1, :2 * ACTIONS.dim].any() and present[0, :2 * ACTIONS.dim].all()
