"""Export a Zarr cache to one HDF5 file, for people who want a single file to copy around.

Zarr stays the working format (a shard per writer is safe in parallel and after a kill; HDF5 writes are not). The
export keeps every array name, dtype and the one-clip chunking, and stores the root attributes as one JSON string,
so `dfer train` reads either format through `dfer.store.reader`.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from dfer.store.clip_store import ClipStore

CLIPS_PER_COPY = 64  # bounds memory: big arrays are copied a slab of clips at a time


def export_h5(store_path: Path, out: Path) -> Path:
    store = ClipStore.open(store_path, mode="r")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(out.suffix + ".partial")
    with h5py.File(partial, "w") as file:
        file.attrs["dfer"] = json.dumps(store.attrs)
        for name in store.array_names():
            source = store.array(name)
            if source.dtype.kind in "OTU":  # variable-length strings
                file.create_dataset(name, data=np.asarray(source[:], dtype=object), dtype=h5py.string_dtype())
                continue
            chunks = (1, *source.shape[1:]) if source.shape[0] else None
            target = file.create_dataset(name, shape=source.shape, dtype=source.dtype, chunks=chunks,
                                         compression="lzf" if source.ndim > 2 else None)  # lzf: fast to read
            for start in range(0, source.shape[0], CLIPS_PER_COPY):
                stop = min(start + CLIPS_PER_COPY, source.shape[0])
                target[start:stop] = source[start:stop]
    partial.replace(out)  # a finished export or none: never a half-written file under the final name
    return out
