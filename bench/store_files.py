"""Files, bytes and time of the token store's layout: this checkout against an older dfer (e.g. format 2, a chunk
file per clip), on the same clips.

    git archive 626db53 dfer | tar -x -C /tmp/dfer-format2         # the last commit with format 2
    python bench/store_files.py --old /tmp/dfer-format2              # ~5 min on 2 busy cores

Two measurements, each in a fresh process per code version (PYTHONPATH = that checkout), alternated `--repeats`
times, keeping each figure's minimum (the least disturbed run on a shared machine):
- `store`: `--clips` clips (120) at the `base` preset's sizes (SigLIP2-base 16 x 196 x 768 and FastConformer-large
  201 x 512 float16 tokens, no media) written through `ClipStore.write_clip`, random tokens; then every array of
  every clip read back in a random order through `open_cache`, as training reads them.
- `extract`: `dfer.extract.pipeline.run` (tiny preset, 16 frames, media kept) on `--extract-clips` (24) generated
  1 s clips: decode + MTCNN + encoders + writes, the whole stage 1.
Figures: files under the store folder, bytes on disk (allocated blocks: a small file still takes 4 KiB) per clip,
wall and CPU seconds (CPU is less moved by other work on the machine).

The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_SIZES = dict(frames=16, image_size=224, num_tokens=196, vision_dim=768, audio_dim=512, audio_frames=201,
                  samples=256000, keep_media=False)  # `base` at 16 frames and max_seconds 16, without media


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def on_disk(path: Path) -> tuple[int, int]:
    """(files, allocated bytes) under a store folder."""
    files = [file for file in path.rglob("*") if file.is_file()]
    return len(files), sum(file.stat().st_blocks * 512 for file in files)


def measure_store(folder: Path, clips: int) -> dict:
    import numpy as np

    import dfer
    from dfer.data.clip import Clip, DatasetListing
    from dfer.store.clip_store import ClipStore
    from dfer.store.reader import open_cache
    from dfer.store.schema import Layout

    layout = Layout.from_record(BASE_SIZES)
    listing = DatasetListing("synthetic", ["a", "b"], {"kind": "kfold", "folds": 2},
                             [Clip(f"s{i % 4}/c{i:04d}", None, None, i % 2, f"s{i % 4}", i % 2 + 1)
                              for i in range(clips)])
    rng = np.random.default_rng(0)
    rows = [{"video/tokens": rng.standard_normal((16, 196, 768), np.float32).astype(np.float16),  # (T, N, D)
             "audio/tokens": rng.standard_normal((201, 512), np.float32).astype(np.float16),  # (Ta, Da)
             "audio/length": np.int32(38), "has_video": np.bool_(True), "has_audio": np.bool_(True),
             "video/face_found": np.ones(16, bool), "duration": np.float32(3.0), "note": ""} for _ in range(8)]
    path = folder / "store"
    start_wall, start_cpu = time.perf_counter(), cpu_s()
    store = ClipStore.create_or_open(path, {"dfer_version": dfer.__version__}, layout, listing)
    for index in range(clips):
        store.write_clip(index, rows[index % len(rows)])  # in order: each shard is written once it is settled
    write = (time.perf_counter() - start_wall, cpu_s() - start_cpu)
    reader = open_cache(path)
    names = ClipStore.open(path, mode="r").array_names()
    start_wall, start_cpu = time.perf_counter(), cpu_s()
    for index in rng.permutation(clips):
        for name in names:
            reader.read(name, int(index))
    read = (time.perf_counter() - start_wall, cpu_s() - start_cpu)
    files, allocated = on_disk(path)
    return {"format": reader.attrs["format"], "shard_clips": reader.attrs.get("shard_clips", 1), "files": files,
            "bytes_per_clip": allocated / clips, "write_s": write[0], "write_cpu_s": write[1],
            "read_ms_per_clip": 1000 * read[0] / clips, "read_cpu_ms_per_clip": 1000 * read[1] / clips}


def measure_extract(folder: Path, clips: int) -> dict:
    from dfer.extract.pipeline import ExtractConfig, run
    from dfer.testing.synth import write_clip

    rows = []
    for i in range(clips):
        write_clip(folder / f"clip{i:03d}.mp4", seconds=1.0, tone_hz=300 + 10 * i)
        rows.append(f"clip{i:03d}.mp4,{['calm', 'angry'][i % 2]},s{i % 4},train\n")
    manifest = folder / "manifest.csv"
    manifest.write_text("path,label,speaker,split\n" + "".join(rows))
    config = ExtractConfig(dataset="manifest", root=manifest, out=folder / "extracted", preset="tiny", frames=16,
                           progress=False)
    start_wall, start_cpu = time.perf_counter(), cpu_s()
    summary = run(config)
    wall, cpu = time.perf_counter() - start_wall, cpu_s() - start_cpu
    files, allocated = on_disk(folder / "extracted")
    return {"done": summary.done, "files": files, "bytes_per_clip": allocated / clips, "extract_s": wall,
            "extract_cpu_s": cpu}


def child(clips: int, extract_clips: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="dfer-store-files-") as folder:
        store = measure_store(Path(folder), clips)
        extract = measure_extract(Path(folder), extract_clips)
    return {"store": store, "extract": extract}


def run_child(code: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--clips", str(args.clips), "--extract-clips",
               str(args.extract_clips)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    result = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"[bench] {code}: the measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def least(runs: list[dict]) -> dict:
    """Per figure, the minimum over the runs (the figures that are not times are the same in every run)."""
    return {part: {key: min(run[part][key] for run in runs) if isinstance(runs[0][part][key], (int, float))
                   else runs[0][part][key] for key in runs[0][part]} for part in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="an older dfer to compare with: the folder holding its dfer/")
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--extract-clips", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.clips, args.extract_clips)))
        return
    codes = {"this": REPO, **({"old": args.old.resolve()} if args.old else {})}
    runs: dict[str, list[dict]] = {name: [] for name in codes}
    for _ in range(args.repeats):
        for name, code in codes.items():
            runs[name].append(run_child(code, args))
    figures = {name: least(found) for name, found in runs.items()}
    print(f"| code | format | clips/shard | store files ({args.clips} clips) | bytes/clip | write s (CPU s) | "
          f"read ms/clip | extract files ({args.extract_clips} clips) | extract s (CPU s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, f in figures.items():
        s, e = f["store"], f["extract"]
        print(f"| {name} | {s['format']} | {s['shard_clips']} | {s['files']} | {s['bytes_per_clip'] / 1e6:.2f} MB | "
              f"{s['write_s']:.1f} ({s['write_cpu_s']:.1f}) | {s['read_ms_per_clip']:.1f} | {e['files']} | "
              f"{e['extract_s']:.1f} ({e['extract_cpu_s']:.1f}) |")
    print(json.dumps({"clips": args.clips, "extract_clips": args.extract_clips, "repeats": args.repeats,
                      "figures": figures}))


if __name__ == "__main__":
    main()
