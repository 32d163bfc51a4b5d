"""Read-only access to a finished cache, in either format: the Zarr store or its HDF5 export.

Training reads one clip at a time from DataLoader workers. Each process opens the file once (lazily, on
first use, because open handles must not cross a fork) and keeps it, instead of reopening per item.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from dfer.data.names import display_names


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

    def read(self, name: str, index: int) -> np.ndarray:
        value = self.handle[name][index]
        return value.decode() if isinstance(value, bytes) else np.asarray(value)


def open_cache(path: Path) -> CacheReader:
    """A Zarr store folder or an `.h5` export."""
    path = Path(path)
    if path.is_dir() and (path / "zarr.json").exists():
        return ZarrReader(path)
    if path.is_file() and path.suffix in (".h5", ".hdf5"):
        return H5Reader(path)
    raise FileNotFoundError(f"{path}: not a dfer cache (a Zarr store folder or an .h5 export)")
