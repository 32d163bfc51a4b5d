"""A store's vital signs: what `dfer info` prints, as one JSON-ready dict."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from dfer.store.clip_store import ClipStore
from dfer.store.schema import MEDIA_ARRAYS


def store_info(path: Path) -> dict:
    store = ClipStore.open(path, mode="r")
    done = store.array("done")[:]
    errors = store.array("error")[:]
    notes = store.array("note")[:]
    labels = store.array("label")[:]
    ids = store.clip_ids
    classes = store.classes
    with_video = done & store.array("has_video")[:]
    face_found = (store.array("video/face_found").get_orthogonal_selection((np.flatnonzero(with_video), slice(None)))
                  if "video/face_found" in store.array_names() else np.zeros(0))  # a store whose streams read no faces
    counts = Counter(int(label) for label in labels)
    return {
        "path": str(store.path),
        "dataset": store.attrs["dataset"],
        "clips": len(ids),
        "done": int(done.sum()),
        "failed": int(sum(1 for d, e in zip(done, errors) if not d and e)),
        "classes": classes,
        "class_counts": {name: counts.get(i, 0) for i, name in enumerate(classes)},
        "protocol": store.attrs["protocol"],
        "clips_with_video": int(with_video.sum()),
        "clips_with_audio": int((done & store.array("has_audio")[:]).sum()),
        "face_found_ratio": float(face_found.mean()) if face_found.size else None,
        "face_tracks": _face_tracks(store, with_video),
        "fingerprint": store.fingerprint,
        "arrays": {name: {"shape": list(store.array(name).shape), "dtype": str(store.array(name).dtype)}
                   for name in store.array_names()},
        "failures": [{"clip_id": ids[i], "error": str(errors[i])} for i in range(len(ids)) if not done[i] and errors[i]],
        "notes": [{"clip_id": ids[i], "note": str(notes[i])} for i in range(len(ids)) if done[i] and notes[i]],
        "token_dtype": store.layout.token_dtype,
        "bytes_on_disk": _bytes_on_disk(store.path),
        "files_on_disk": sum(1 for entry in store.path.rglob("*") if entry.is_file()),
        "shard_clips": store.shard_clips,
        "bytes_per_clip": _bytes_per_clip(store, int(done.sum())),
    }


def _face_tracks(store: ClipStore, with_video: np.ndarray) -> dict | None:
    """How the face track was chosen: the setting, and how often a clip had several faces and another than the
    largest was cropped (the speaker). None for stores made before tracks were recorded."""
    if "video/track_count" not in store.array_names():
        return None
    count = store.array("video/track_count")[:][with_video]
    rank = store.array("video/track_rank")[:][with_video]
    return {"choice": store.fingerprint.get("face_track", "largest"), "clips_with_several": int((count > 1).sum()),
            "clips_not_largest": int((rank > 0).sum())}


def _bytes_on_disk(path: Path) -> int:
    return sum(entry.stat().st_size for entry in Path(path).rglob("*") if entry.is_file())


def _bytes_per_clip(store: ClipStore, done: int) -> float:
    """Bytes on disk a finished clip costs without the media (`video/faces`, `audio/waveform`): what stage 2 reads.
    Every array but the media, per done clip; blank chunks of unfinished clips are never written."""
    media = [store.path / name for name in MEDIA_ARRAYS.values()]
    total = sum(entry.stat().st_size for entry in store.path.rglob("*")
                if entry.is_file() and not any(entry.is_relative_to(folder) for folder in media))
    return total / max(done, 1)
