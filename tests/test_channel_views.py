"""Channel views (dfer.train.views): heads trained through another channel answer clips of a third one, which heads
trained on the store alone misread; adapted, a view's groups read that view's statistics and its lone clips the
store's; a view that is not the store's clips, or a view read from disk, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dfer.adapt.batches import speaker_split
from dfer.evaluation.evaluate import evaluate_run
from dfer.store.reader import open_cache
from dfer.testing.sample import SMALL_HEADS
from dfer.testing.synthetic_store import make_synthetic_store
from dfer.train.config import make_config
from dfer.train.run import train

SETTINGS = dict(epochs=12, batch_size=16, lr=3e-3, patience=12, heads=SMALL_HEADS, fold="1", modalities="audio",
                in_memory=True)


def test_heads_trained_through_a_channel_view_answer_another_channel(tmp_path):
    store = make_synthetic_store(tmp_path / "store", signal=1.0)
    view = make_synthetic_store(tmp_path / "view", signal=1.0, channel_shift=2.0)
    unseen = make_synthetic_store(tmp_path / "unseen", signal=1.0, channel_shift=1.4)  # the same direction, weaker
    plain = train(store, tmp_path / "plain", make_config(None, **SETTINGS), show=False).runs["fold1"]
    viewed = train(store, tmp_path / "viewed", make_config(None, views=[view], **SETTINGS), show=False).runs["fold1"]
    assert viewed["UAR"] >= plain["UAR"] - 0.05  # the store's own channel is answered as well
    through = {run: evaluate_run(tmp_path / run, unseen)["UAR"] for run in ("plain", "viewed")}
    assert through["viewed"] > through["plain"] + 0.2, through
    assert f"views of it (`{view}`)" in (tmp_path / "viewed" / "README.md").read_text()  # the card says so


def test_a_views_speaker_groups_are_standardised_with_that_views_statistics_and_the_stores_prior(tmp_path):
    store = open_cache(make_synthetic_store(tmp_path / "store", speaker_shift=2.0))
    view = open_cache(make_synthetic_store(tmp_path / "view", speaker_shift=2.0, channel_shift=3.0))
    rows = list(range(12, 48))  # three speakers' clips
    exact, own = speaker_split(store, ("audio",), {"train": rows}, 2.0, lone=0.0)
    kept, through = speaker_split(view, ("audio",), {"train": rows}, 2.0, lone=0.0, prior=exact)
    assert kept is exact
    length = int(store.read("audio/length", 12))
    channel = (view.tokens("audio", 12) - store.tokens("audio", 12))[:length].mean(0)  # (D,) the view's offset
    batch = {"clip_row": torch.tensor(rows), "label": torch.zeros(len(rows), dtype=torch.long)}
    torch.manual_seed(0)
    mean = own["train"](dict(batch))["audio_mean"]  # (B, D)
    torch.manual_seed(0)
    moved = through["train"](dict(batch))["audio_mean"] - mean  # the same groups drawn, through the channel
    cosine = torch.nn.functional.cosine_similarity(moved, torch.as_tensor(channel)[None].float(), dim=1)  # (B,)
    heard = moved.norm(dim=1) > 0  # (B,) a group of clips without sound (every 7th has none) keeps the prior
    assert heard.sum() > len(rows) // 2
    assert (cosine[heard] > 0.99).all()  # each group's mean moved with the channel (less as it shrinks to the prior)


def test_a_view_of_other_clips_or_read_from_disk_is_refused(tmp_path):
    store = make_synthetic_store(tmp_path / "store")
    other = make_synthetic_store(tmp_path / "other", clips_per_speaker=6)
    with pytest.raises(ValueError, match=f"{other}: a view must hold the store's clips"):
        train(store, tmp_path / "run", make_config(None, views=[other], **SETTINGS), show=False)
    with pytest.raises(ValueError, match="--in-memory"):
        make_config(None, views=[Path(other)], **{**SETTINGS, "in_memory": False})
