"""Read-only access to a finished cache, in either format: the Zarr store or its HDF5 export.

Training reads one clip at a time from DataLoader workers. Each process opens the file once (lazily, on
first use, because open handles must not cross a fork) and keeps it, instead of reopening per item.

`open_cache` is also the notebook's way into a cache (`dfer.open_cache`): `tokens` decodes a clip's encoder tokens to
float32 whatever the store holds (float16, or int8 codes with their scales), and `clips` / `clip` give the per-clip
listing (ids, labels as codes and words, speaker, fold, split) beside the extraction's outcome.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dfer.data.names import display_names
from dfer.streams import PRESENT

CLIP_OUTCOME = ("done", "error", "note", "has_video", "has_audio", "duration")  # per clip, from extraction


class CacheReader:
    """The arrays and root attributes of a cache; `read(name, index)` returns one clip's row."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handle = None
        self._pid = None
        self.attrs = self._read_attrs()

    def _open(self):
        raise NotImplementedError

    def _read_attrs(self) -> dict:
        raise NotImplementedError

    @property
    def handle(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def read(self, name: str, index: int) -> np.ndarray:
        return np.asarray(self.handle[name][index])

    def read_all(self, name: str) -> np.ndarray:
        return np.asarray(self.handle[name][:])

    def has(self, name: str) -> bool:
        """Whether the cache holds the array `name` (stores of older formats lack some, e.g. `split`)."""
        return name in self.handle

    def members(self, group: str) -> list[str]:
        """The names of the arrays directly under `group` (e.g. "info"), sorted; none when there is no such group."""
        raise NotImplementedError

    def tokens(self, stream: str, index: int) -> np.ndarray:
        """One clip's `stream` encoder tokens as float32, decoded as the heads read them: (T, N, D) of a grid stream
        (`video`), (Ta_max, D) of a sequence (`audio`), whose first `<stream>/length` rows hold tokens (the rest is
        padding)."""
        # schema pulls in torch and zarr's codecs: only a reader of tokens pays for them, not `dfer info`
        from dfer.store.schema import SCALE_SUFFIXES, decode_tokens, tokens_array

        name = tokens_array(stream)
        scales = [self.read(name + suffix, index) for suffix in SCALE_SUFFIXES] if self.token_dtype == "int8" else []
        return decode_tokens(self.read(name, index), *scales)

    def clips(self) -> dict[str, np.ndarray]:
        """The per-clip table, one (C,) column per key, in store order; `pandas.DataFrame(reader.clips())` shows it.

        Listing columns as the dataset adapter gave them: clip_id, label (the class index), speaker, fold, split and
        the adapter's `info/<key>` extras; the extraction's outcome: done, error, note, has_video, has_audio, duration
        (seconds); then `class` (the label's code, as `classes` holds it) and `name` (its display name)."""
        columns = {name: self.read_all(name) for name in self.listed_arrays()}
        labels = columns["label"].astype(int)
        known = (labels >= 0) & (labels < len(self.classes))
        for key, words in (("class", self.classes), ("name", self.display_names)):
            columns[key] = np.where(known, np.array(words, dtype=str)[np.where(known, labels, 0)], "")
        return columns

    def listed_arrays(self) -> list[str]:
        """The (C,) arrays `clips` and `clip` read: the listing's that this store has, its `info/` extras and the
        extraction's outcome."""
        listing = [name for name in ("clip_id", "label", "speaker", "fold", "split") if self.has(name)]
        return [*listing, *(f"info/{key}" for key in self.members("info")), *CLIP_OUTCOME]

    def clip(self, index: int) -> dict:
        """Clip `index`: its row of `clips` (plain Python values, read for this clip alone) and each stream's decoded
        tokens, e.g. "video/tokens" (T, N, D) and "audio/tokens" (Ta, D) cut to `audio/length`; None for a stream the
        clip does not have."""
        row = {name: np.asarray(self.read(name, index)).item() for name in self.listed_arrays()}
        label = int(row["label"])
        known = 0 <= label < len(self.classes)
        row["class"], row["name"] = (self.classes[label], self.display_names[label]) if known else ("", "")
        for stream in self.streams:
            has = row[PRESENT[stream.input]]
            tokens = self.tokens(stream.name, index) if has else None
            if has and stream.tokens == "sequence":
                tokens = tokens[:int(self.read(f"{stream.name}/length", index))]
            row[f"{stream.name}/tokens"] = tokens
        return row

    def __len__(self) -> int:
        """The clips in the cache, done or not."""
        return self.handle["done"].shape[0]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}: {self.attrs['dataset']}, {len(self)} clips, "
                f"classes {', '.join(self.display_names)}, {self.token_dtype} tokens)")

    def __getstate__(self) -> dict:  # workers reopen the file themselves
        return {**self.__dict__, "_handle": None, "_pid": None, "_arrays": {}}

    @property
    def classes(self) -> list[str]:
        return list(self.attrs["classes"])

    @property
    def display_names(self) -> list[str]:
        """The classes' display names (`dfer.data.names`), in the same order; the store keeps the codes."""
        return display_names(self.attrs["dataset"], self.classes)

    @property
    def fingerprint(self) -> dict:
        return dict(self.attrs["fingerprint"])

    @property
    def streams(self) -> tuple:
        """The store's streams (`dfer.streams.Stream`), in name order: `audio` and `video` in a store of format 3 or
        older."""
        from dfer.store.fingerprint import Fingerprint  # imports the encoders' builder: only when asked

        return Fingerprint.from_dict(self.fingerprint).stream_shapes()

    @property
    def layout(self) -> dict:
        return dict(self.attrs["layout"])

    @property
    def token_dtype(self) -> str:
        """How the tokens are stored (`dfer.store.schema.encode_tokens`); stores of format 1 hold float16."""
        return self.layout.get("token_dtype", "float16")


class ZarrReader(CacheReader):
    def _open(self):
        import zarr

        return zarr.open_group(str(self.path), mode="r")

    def _read_attrs(self) -> dict:
        return json.loads((self.path / "zarr.json").read_text())["attributes"]

    def read(self, name: str, index: int) -> np.ndarray:
        return np.asarray(self._array(name)[index])

    def read_all(self, name: str) -> np.ndarray:
        values = self._array(name)[:]
        return np.array(values.tolist(), dtype=str) if values.dtype.kind == "T" else values  # zarr's StringDType

    def members(self, group: str) -> list[str]:
        return sorted(self.handle[group].array_keys()) if group in self.handle else []

    def _array(self, name: str):
        """Array handles are kept: looking one up re-reads its metadata from disk."""
        arrays = self.__dict__.setdefault("_arrays", {})
        if name not in arrays or self._pid != os.getpid():
            arrays[name] = self.handle[name]
        return arrays[name]


class H5Reader(CacheReader):
    """HDF5 export (`dfer export-h5`): the same array names, attributes stored as one JSON string."""

    def _open(self):
        import h5py

        return h5py.File(self.path, "r")

    def _read_attrs(self) -> dict:
        import h5py

        with h5py.File(self.path, "r") as file:
            return json.loads(file.attrs["dfer"])

    def read_all(self, name: str) -> np.ndarray:
        values = self.handle[name][:]
        return values.astype(str) if values.dtype.kind in "OS" else values

    def members(self, group: str) -> list[str]:
        return sorted(self.handle[group].keys()) if group in self.handle else []

    def read(self, name: str, index: int) -> np.ndarray:
        value = self.handle[name][index]
        return value.decode() if isinstance(value, bytes) else np.asarray(value)


def open_cache(path: Path | str) -> CacheReader:
    """The reader of a cache: a Zarr store folder (made by `dfer extract`) or its `.h5` export (`dfer export-h5`).

    Examples:
        >>> cache = dfer.open_cache("cache/demo")
        >>> cache.clips()["name"]  # each clip's class, in words
        >>> cache.tokens("video", 0).shape  # (T, N, D) float32, int8 stores decoded
    """
    path = Path(path)
    if path.is_dir() and (path / "zarr.json").exists():
        return ZarrReader(path)
    if path.is_file() and path.suffix in (".h5", ".hdf5"):
        return H5Reader(path)
    raise FileNotFoundError(f"{path}: not a dfer cache (a Zarr store folder or an .h5 export)")
