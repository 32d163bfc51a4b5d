"""How much int8 tokens (`dfer.store.schema.encode_tokens`) lose, in the units the heads see them in.

    python bench/token_error.py FLOAT16_STORE [--int8 INT8_STORE] [--clips 64]

The heads standardise every token dimension with its mean and std over the training tokens, so the error that matters
is the error divided by that dimension's std. Per stream, over the valid tokens of up to `--clips` evenly spaced
finished clips (audio frames inside audio/length, video tokens of frames with a face) of FLOAT16_STORE:
- int8: the schema's encoding (per-dimension offset and scale per clip) of the float16 tokens, decoded;
- per-token absmax: the naive alternative (one scale per token, no offset), for comparison;
- store: with `--int8`, the tokens of a second store of the same clips extracted with `--token-dtype int8`
  (the whole path: encoder, encoding, store, reader).
Each prints the RMS and the largest error in standard deviations, and the bytes per clip of both stores without media.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dfer.store.info import store_info
from dfer.store.reader import open_cache
from dfer.adapt.store_moments import stored_valid_tokens
from dfer.store.schema import decode_tokens, encode_tokens


def per_token_absmax(tokens: np.ndarray) -> np.ndarray:
    """int8 with one symmetric scale per token, decoded: what an outlier dimension breaks."""
    scale = np.abs(tokens).max(-1, keepdims=True) / 127  # (L, 1)
    return np.rint(tokens / np.where(scale > 0, scale, 1)) * scale


def measure(float16: Path, int8: Path | None, clips: int) -> dict:
    reader = open_cache(float16)
    other = open_cache(int8) if int8 else None
    done = np.flatnonzero(reader.read_all("done"))
    chosen = done[np.linspace(0, len(done) - 1, min(clips, len(done))).astype(int)]
    report = {}
    for stream in reader.streams:
        rows = {"float16": [], "int8": [], "per-token absmax": [], "store": []}
        for index in chosen:
            tokens = stored_valid_tokens(reader, stream, index)
            if not len(tokens):
                continue
            rows["float16"].append(tokens)
            rows["int8"].append(decode_tokens(*encode_tokens("tokens", tokens, "int8").values()))
            rows["per-token absmax"].append(per_token_absmax(tokens))
            if other is not None:
                rows["store"].append(stored_valid_tokens(other, stream, index))
        if not rows["float16"]:
            continue
        reference = np.concatenate(rows.pop("float16"))  # (L_all, D)
        std = reference.std(0)  # (D,) the heads' standardisation
        std = np.where(std > 0, std, 1)
        report[stream.name] = {"tokens": reference.shape[0], "dim": reference.shape[1]}
        for name, decoded in rows.items():
            if decoded:
                error = (np.concatenate(decoded) - reference) / std  # (L_all, D) in standard deviations
                report[stream.name][name] = {"rms_std": float(np.sqrt((error ** 2).mean())),
                                        "max_std": float(np.abs(error).max())}
    report["bytes_per_clip"] = {str(path): store_info(path)["bytes_per_clip"] for path in filter(None, (float16, int8))}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("float16", type=Path)
    parser.add_argument("--int8", type=Path)
    parser.add_argument("--clips", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(measure(args.float16, args.int8, args.clips), indent=2))


if __name__ == "__main__":
    main()
