"""Stage-2 speed: a head training step on cached tokens vs. on tokens recomputed by the frozen encoders, and the
loader's clips/s from a Zarr store, its HDF5 export and RAM.

    python bench/train.py                                  # CPU: about 4 min on a quiet 2-core machine, up to ~8 busy
    python bench/train.py --device cuda --batch 32 --steps 5
    python bench/train.py --parts loader --clips 256 --cold

(a) `step`: one stage-2 training step of `DferHeads` (liquid fusion, av, default head sizes, 8 classes) at the real
    `base` sizes: T=16 frames of N=196 SigLIP2-base tokens (D=768, grid 14, 224 px crops) and 3 s of audio = 38
    FastConformer-large frames (Da=512), batch B. The step is the body of `dfer.train.loop.fit`: to_device,
    forward, label-smoothed cross-entropy, backward, gradient clipping, AdamW. Two ways to feed it:
    - cached: the batch is already in memory as the loader gives it (`collate` of float16 store rows);
    - encoders: the batch's tokens are recomputed from its B x T face crops (uint8, 224 px) and B x 3 s of 16 kHz
      audio by the frozen `base-random` encoders (real architectures, random weights) under `inference_mode`,
      batched across clips like stage-1 extraction (bf16 autocast on CUDA), then the same head step.
    The encoders run with `--encoder-threads` (default: every core); the head step with `--head-threads` (default:
    `dfer train`'s `threads`, 1); the cached step is also timed with the encoder thread count. Untimed warm-up
    steps first (the encoder one also yields the tokens the cached batch holds), then `--steps` timed encoder
    steps and `--cached-steps` timed cached ones; the median is reported. The ratio is encoders / cached, both
    with the head step on the same threads; the JSON also has it with the cached batch's read from Zarr added.
(b) `loader`: one pass over every clip of a synthetic store at the real `base` sizes (written through the real
    `ClipStore`: 16 x 196 x 768 float16 video tokens, 201 x 512 float16 audio frames of which ~38 valid, landmarks,
    masks; no media; and the same clips as int8), each batch as the heads take it (`to_device`: on `--device`,
    decoded), shuffled, batch `--loader-batch`, as `dfer train` builds it: `CachedClips` through DataLoader workers
    (persistent) from the float16 Zarr store and its `export_h5` file, per worker count; and `ResidentClips`
    (`--in-memory`: the split on the device, int8 codes or float16, batches drawn there by index, no workers),
    per store dtype. Each for modalities `av` and `audio` (an audio model never reads video tokens). Two passes
    per loader, the second timed: the first starts the workers and opens the files, as in every training epoch
    after the first. The store was just written, so reads hit the page cache; `--cold` evicts the store's files
    from it (posix_fadvise DONTNEED) before each timed pass. `speedup_vs_zarr_av_2workers`: the resident int8 av
    loader's clips/s over today's default (Zarr float16 store, 2 workers; `_float16`: the resident float16 one),
    printed beside the head step's clips/s of (a) when both parts run.

The machine may be shared, and two torch threads on two cores with one of them taken are several times slower,
not twice: before each measurement the bench waits up to `--quiet-wait` s for other work to stop, reports the
cores other work kept busy while it measured ("other load"), and repeats a contended measurement (`--retries`,
while under `--budget` s), keeping the least contended run. The last stdout line is one JSON object with every
figure. Temporary stores are deleted unless `--out` is given.
"""

from __future__ import annotations

import argparse
import math
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from dfer.data.clip import Clip, DatasetListing
from dfer.encoders import AUDIO_ARCHS, VISION_ARCHS, resolve_preset
from dfer.encoders.audio import load_audio
from dfer.encoders.vision import load_vision
from dfer.heads import DferHeads
from dfer.host_memory import keep_freed_memory
from dfer.inference.batch import collate, to_device
from dfer.store.clip_store import ClipStore
from dfer.store.h5 import export_h5
from dfer.store.reader import open_cache
from dfer.store.schema import Layout, encode_tokens
from dfer.train.config import head_config, make_config
from dfer.streams import historic
from dfer.train.data import CachedClips, EpochOrder, ResidentClips
from machine import add_contention_options, cpu_model, least_contended, machine_busy_s  # bench/machine.py

PRESET = "base-random"
CLASSES = [f"class{c}" for c in range(8)]  # RAVDESS has 8
CLIP_SECONDS = 3.0  # a typical RAVDESS / CREMA-D utterance
SAMPLE_RATE = 16000
MAX_SECONDS = 16.0  # `dfer extract`'s default: audio/tokens are padded to this span in the store
# MTCNN-like points (eyes, nose, mouth corners) as fractions of the crop side
LANDMARKS = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.72], [0.62, 0.72]], np.float32)


# ------------------------------------------------------------------------------------- machine and timing


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1






def own_cpu_s() -> float:
    """CPU seconds of this process and its reaped children (DataLoader workers, once shut down)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class OtherLoad:
    """Cores kept busy by other work on the machine between construction and `cores()` (NaN without /proc)."""

    def __init__(self):
        self.busy, self.own, self.start = machine_busy_s(), own_cpu_s(), time.perf_counter()

    def cores(self) -> float | None:
        wall = time.perf_counter() - self.start
        other = (machine_busy_s() - self.busy - (own_cpu_s() - self.own)) / wall
        return None if other != other else max(other, 0.0)




def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


# ------------------------------------------------------------------------------------ (a) one training step


def clip_inputs(batch: int, frames: int, image_size: int, seed: int) -> dict[str, torch.Tensor]:
    """What a stage-3 batch holds before the encoders: face crops, waveforms and the per-clip metadata."""
    g = torch.Generator().manual_seed(seed)
    samples = int(CLIP_SECONDS * SAMPLE_RATE)
    return {
        "faces": torch.randint(0, 256, (batch, frames, 3, image_size, image_size), dtype=torch.uint8, generator=g),
        "waveform": 0.1 * torch.randn(batch, samples, generator=g),  # (B, S) float, 16 kHz
        "num_samples": torch.full((batch,), samples, dtype=torch.long),  # (B,)
        "label": torch.randint(0, len(CLASSES), (batch,), generator=g),
        "frame_time": ((torch.arange(frames) + 0.5) * CLIP_SECONDS / frames).repeat(batch, 1),  # (B, T) s
    }


def encode(inputs: dict, vision, audio, device: torch.device, threads: int) -> dict[str, torch.Tensor]:
    """Frozen encoders on the batch's media, batched across clips as in `dfer.extract.batch.encode_batch`.

    Returns float32 tokens usable by autograd (inference tensors cannot be saved for backward: cloned outside).
    """
    if device.type == "cpu":
        torch.set_num_threads(threads)
    faces = inputs["faces"].to(device)  # (B, T, 3, S, S) uint8
    B, T = faces.shape[:2]
    with torch.inference_mode(), autocast(device):
        video = vision(faces.flatten(0, 1)).unflatten(0, (B, T))  # (B*T, N, D) -> (B, T, N, D)
        sync(device)
        vision_done = time.perf_counter()
        tokens, length = audio(inputs["waveform"].to(device), inputs["num_samples"].to(device))  # (B, Ta, Da), (B,)
    sync(device)
    return {"video_tokens": video.float().clone(), "audio_tokens": tokens.float().clone(),
            "audio_length": length.long().clone(), "vision_done": vision_done}


def cached_rows(inputs: dict, tokens: dict, layout: Layout) -> list[dict[str, np.ndarray]]:
    """Store rows (float16, audio padded to the store's `audio_frames`) of the clips, as `CachedClips` reads them."""
    rows = []
    for i in range(len(inputs["label"])):
        n = int(tokens["audio_length"][i])
        audio = np.zeros(layout.tokens["audio"].shape, np.float16)  # (Ta_max, Da)
        audio[:n] = tokens["audio_tokens"][i, :n].cpu().numpy()
        rows.append({
            "video_tokens": tokens["video_tokens"][i].cpu().numpy().astype(np.float16),  # (T, N, D)
            "landmarks": np.repeat(LANDMARKS[None] * layout.image_size, layout.frames, 0),  # (T, 5, 2)
            "face_found": np.ones(layout.frames, bool),
            "audio_tokens": audio,
            "audio_length": np.int32(n),
            "has_video": np.bool_(True),
            "has_audio": np.bool_(True),
            "frame_time": inputs["frame_time"][i].numpy().astype(np.float32),
            "label": np.int16(inputs["label"][i]),
        })
    return rows


def train_step(model, optimizer, batch: dict, device: torch.device, cfg) -> float:
    """The body of `dfer.train.loop.fit`'s batch loop (without the scheduler)."""
    batch = to_device(batch, device)
    with autocast(device):
        logits = model(batch)["logits"]
    loss = F.cross_entropy(logits.float(), batch["label"], label_smoothing=cfg.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss.item()  # a sync point, as in the loop


def bench_step(args, device: torch.device, started_bench: float) -> dict:
    torch.manual_seed(args.seed)
    spec = resolve_preset(PRESET)
    print(f"[bench] step: building the {PRESET} encoders ({spec.vision} + {spec.audio}) ...", flush=True)
    started = time.perf_counter()
    vision = load_vision(spec.vision, seed=args.seed, device=device)
    audio = load_audio(spec.audio, seed=args.seed, device=device).eval()
    build_s = time.perf_counter() - started
    fingerprint = {"vision": vision.describe(), "audio": audio.describe()}
    layout = Layout.from_settings(args.frames, {"video": ("vision", fingerprint["vision"]),
                                                "audio": ("audio", fingerprint["audio"])}, MAX_SECONDS, False)
    cfg = make_config(fusion="liquid", modalities="av", device=str(device))
    heads = head_config(historic(fingerprint["vision"], fingerprint["audio"]), CLASSES, cfg)
    torch.manual_seed(args.seed)
    model = DferHeads(heads).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    inputs = clip_inputs(args.batch, args.frames, vision.image_size, args.seed)
    head_threads, encoder_threads = args.head_threads or cfg.threads, args.encoder_threads or cores()

    def encoder_step() -> dict:
        start = time.perf_counter()
        tokens = encode(inputs, vision, audio, device, encoder_threads)
        encoded = time.perf_counter()
        batch = {"video_tokens": tokens["video_tokens"],
                 "landmarks": torch.from_numpy(np.repeat(LANDMARKS[None, None] * vision.image_size, args.frames, 1)
                                               ).expand(args.batch, -1, -1, -1),  # (B, T, 5, 2)
                 "face_found": torch.ones(args.batch, args.frames, dtype=torch.bool),
                 "audio_tokens": tokens["audio_tokens"], "audio_length": tokens["audio_length"],
                 "has_video": torch.ones(args.batch, dtype=torch.bool),
                 "has_audio": torch.ones(args.batch, dtype=torch.bool),
                 "frame_time": inputs["frame_time"], "label": inputs["label"]}
        if device.type == "cpu":
            torch.set_num_threads(head_threads)
        train_step(model, optimizer, batch, device, cfg)
        end = time.perf_counter()
        return {"total": end - start, "vision": tokens["vision_done"] - start, "audio": encoded - tokens["vision_done"],
                "heads": end - encoded, "tokens": tokens}

    def cached_steps(batch: dict, threads: int) -> dict:
        if device.type == "cpu":
            torch.set_num_threads(threads)
        for _ in range(args.cached_warmup):
            train_step(model, optimizer, batch, device, cfg)
        load, times = OtherLoad(), []
        for _ in range(args.cached_steps):
            start = time.perf_counter()
            train_step(model, optimizer, batch, device, cfg)
            times.append(time.perf_counter() - start)
        return {"s": statistics.median(times), "all": times, "threads": threads, "other_load_cores": load.cores()}

    def encoder_steps() -> dict:
        load = OtherLoad()
        steps = [encoder_step() for _ in range(args.steps)]
        other = load.cores()
        median = lambda key: statistics.median(step[key] for step in steps)  # noqa: E731
        return {"s": median("total"), "all": [step["total"] for step in steps], "vision_s": median("vision"),
                "audio_s": median("audio"), "heads_s": median("heads"), "threads": encoder_threads,
                "other_load_cores": other}

    print(f"[bench] step: warm-up step on the encoder path (B={args.batch}, {encoder_threads} threads) ...", flush=True)
    warm = encoder_step()
    batch = collate(cached_rows(inputs, warm["tokens"], layout))  # as the loader gives it
    del warm
    runs = {}
    print(f"[bench] step: {args.cached_steps} cached steps, {head_threads} thread(s) ...", flush=True)
    runs["cached"] = least_contended("cached step", lambda: cached_steps(batch, head_threads), args, started_bench)
    if encoder_threads != head_threads and device.type == "cpu":
        print(f"[bench] step: {args.cached_steps} cached steps, {encoder_threads} threads ...", flush=True)
        runs["cached_encoder_threads"] = least_contended(
            "cached step", lambda: cached_steps(batch, encoder_threads), args, started_bench)
    print(f"[bench] step: {args.steps} steps on the encoder path ...", flush=True)
    runs["encoders"] = least_contended("encoder step", encoder_steps, args, started_bench)
    result = {
        "batch": args.batch, "frames": args.frames, "num_tokens": layout.record()["num_tokens"],
        "vision_dim": layout.record()["vision_dim"], "audio_dim": layout.record()["audio_dim"], "audio_frames": int(batch["audio_length"].max()),
        "head_params": model.num_parameters(),
        "encoder_params": sum(p.numel() for p in vision.parameters()) + sum(p.numel() for p in audio.parameters()),
        "head_threads": head_threads, "encoder_threads": encoder_threads, "encoder_build_s": build_s,
        "cached_steps": args.cached_steps, "encoder_steps": args.steps, "runs": runs,
        "ratio": runs["encoders"]["s"] / runs["cached"]["s"],
    }
    if "cached_encoder_threads" in runs:
        result["ratio_cached_encoder_threads"] = runs["encoders"]["s"] / runs["cached_encoder_threads"]["s"]
    if device.type == "cuda":
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


# -------------------------------------------------------------------------------------------- (b) loader


def base_layout(frames: int, token_dtype: str = "float16") -> tuple[Layout, dict]:
    """The store layout and fingerprint `dfer extract --preset base` gives, from the preset architectures."""
    v, a = VISION_ARCHS["siglip2-base"], AUDIO_ARCHS["fastconformer-large"]
    grid = v["image_size"] // v["patch_size"]
    vision = {"id": "synthetic", "revision": "seed=0", "dim": v["hidden_size"], "image_size": v["image_size"],
              "num_tokens": grid * grid, "grid": grid}
    audio = {"id": "synthetic", "revision": "seed=0", "dim": a["d_model"], "sample_rate": SAMPLE_RATE,
             "frame_seconds": 0.08}
    layout = Layout.from_settings(frames, {"video": ("vision", vision), "audio": ("audio", audio)}, MAX_SECONDS,
                                  keep_media=False, token_dtype=token_dtype)
    fingerprint = {"vision": vision, "audio": audio, "frames": frames, "sample_rate": SAMPLE_RATE,
                   "crop_margin": 0.25, "max_seconds": MAX_SECONDS, "keep_media": False, "token_dtype": token_dtype}
    return layout, fingerprint


def write_store(path: Path, clips: int, frames: int, seed: int, token_dtype: str = "float16") -> Layout:
    """A store of `clips` audio-visual 3 s clips at the `base` sizes, random tokens (as incompressible as real
    float16 tokens or more) stored as `token_dtype`, written through `ClipStore` like
    `dfer.testing.make_synthetic_store`. The same seed gives the same clips in either dtype."""
    import dfer

    layout, fingerprint = base_layout(frames, token_dtype)
    fingerprint["dfer_version"] = dfer.__version__
    listing = DatasetListing("synthetic", CLASSES, {"kind": "kfold", "folds": 4},
                             [Clip(f"s{i % 8}/clip{i:04d}", None, None, i % len(CLASSES), f"s{i % 8}", i % 4 + 1)
                              for i in range(clips)])
    store = ClipStore.create_or_open(path, fingerprint, layout, listing)
    rng = np.random.default_rng(seed)
    length = round(CLIP_SECONDS / 0.08) + 1  # 38 audio frames
    landmarks = np.repeat(LANDMARKS[None] * layout.image_size, frames, 0)  # (T, 5, 2)
    frame_time = ((np.arange(frames) + 0.5) * CLIP_SECONDS / frames).astype(np.float32)
    for index in range(clips):
        audio = np.zeros(layout.tokens["audio"].shape, np.float16)  # (Ta_max, Da)
        audio[:length] = rng.standard_normal((length, audio.shape[-1]), np.float32)
        video = rng.standard_normal(layout.tokens["video"].shape, np.float32)  # (T, N, D)
        store.write_clip(index, {
            "duration": np.float32(CLIP_SECONDS), "span": np.array([0, CLIP_SECONDS], np.float32),
            "has_video": np.bool_(True), "has_audio": np.bool_(True), "note": "",
            **encode_tokens("video/tokens", video.astype(np.float16), token_dtype),
            "video/frame_time": frame_time, "video/face_found": np.ones(frames, bool), "video/landmarks": landmarks,
            **encode_tokens("audio/tokens", audio, token_dtype, valid=length), "audio/length": np.int32(length),
        })
    return layout


def disk_bytes(path: Path) -> int:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(f.stat().st_blocks * 512 for f in files)


def evict(path: Path) -> None:
    """Drop a store's (clean) pages from the page cache, so the next read comes from the disk."""
    for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def one_pass(batches, device: torch.device) -> tuple[int, float]:
    """Clips and seconds of one pass, each batch as the heads take it (`to_device`: on the device, decoded)."""
    start, clips = time.perf_counter(), 0
    for batch in batches:
        clips += len(to_device(batch, device)["label"])
    sync(device)
    return clips, time.perf_counter() - start


def bench_loader(args, work: Path, device: torch.device, started_bench: float) -> dict:
    stores = {dtype: work / f"synthetic-base-{dtype}.zarr" for dtype in ("float16", "int8")}
    print(f"[bench] loader: writing {args.clips} clips at base sizes to {stores['float16']} ...", flush=True)
    started = time.perf_counter()
    layout = write_store(stores["float16"], args.clips, args.frames, args.seed)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    h5 = export_h5(stores["float16"], work / "synthetic-base.h5")
    export_s = time.perf_counter() - started
    print(f"[bench] loader: the same clips as int8 to {stores['int8']} ...", flush=True)
    write_store(stores["int8"], args.clips, args.frames, args.seed, token_dtype="int8")
    raw = args.clips * sum(math.prod(array.shape) for array in layout.tokens.values()) * 2
    result: dict = {"clips": args.clips, "loader_batch": args.loader_batch, "cold": args.cold,
                    "raw_token_bytes": raw, "zarr_bytes": disk_bytes(stores["float16"]), "h5_bytes": disk_bytes(h5),
                    "int8_zarr_bytes": disk_bytes(stores["int8"]), "write_s": write_s, "export_s": export_s,
                    "passes": {}}
    print(f"[bench] loader: store {result['zarr_bytes'] / 2**30:.2f} GiB on disk ({write_s:.0f} s), "
          f"HDF5 {result['h5_bytes'] / 2**30:.2f} GiB ({export_s:.0f} s); raw tokens {raw / 2**30:.2f} GiB", flush=True)
    torch.set_num_threads(make_config().threads)  # as `dfer train` runs the main process
    indices = list(range(args.clips))
    # (source, its path, workers counts, how to build its clips): the store through DataLoader workers (float16
    # store and its HDF5 export), or a split resident on the device (`dfer train --in-memory`, either dtype)
    sources = [("zarr", stores["float16"], args.workers, lambda reader, m: CachedClips(reader, indices, m)),
               ("h5", h5, args.workers, lambda reader, m: CachedClips(reader, indices, m)),
               *((f"device_{dtype}", stores[dtype], [0], lambda reader, m: ResidentClips(reader, indices, m, device))
                 for dtype in ("float16", "int8"))]
    for source, path, workers_counts, build in sources:
        for modalities in ("av", "audio"):
            started = time.perf_counter()
            clips = build(open_cache(path), modalities)
            sync(device)
            load_s = time.perf_counter() - started
            resident = isinstance(clips, ResidentClips)
            for workers in workers_counts:
                def measure(clips=clips, workers=workers, load_s=load_s, resident=resident, path=path) -> dict:
                    load = OtherLoad()
                    order = EpochOrder(len(clips), torch.Generator().manual_seed(args.seed))  # shuffled, as in training
                    batches = clips.batches(order, args.loader_batch, workers)
                    first_clips, first_s = one_pass(batches, device)  # starts the workers, opens the files
                    if args.cold and not resident:
                        evict(path)
                    n, seconds = one_pass(batches, device)
                    del batches  # joins persistent workers, so their CPU time is counted
                    return {"source": source, "modalities": modalities, "workers": workers, "clips": n,
                            "seconds": seconds, "clips_per_s": n / seconds,
                            "first_pass_clips_per_s": first_clips / first_s,
                            "in_memory_load_s": load_s if resident else None,
                            "other_load_cores": load.cores()}

                key = f"{source}_{modalities}_w{workers}"
                result["passes"][key] = run = least_contended(f"loader {key}", measure, args, started_bench)
                print(f"[bench] loader: {key}: {run['clips_per_s']:.1f} clips/s "
                      f"(first pass {run['first_pass_clips_per_s']:.1f}, other load {fmt(run['other_load_cores'])})",
                      flush=True)
            del clips
    zarr = result["passes"].get("zarr_av_w2")
    for dtype in ("float16", "int8"):  # the resident split against today's default loader
        result[f"speedup_vs_zarr_av_2workers_{dtype}"] = \
            result["passes"][f"device_{dtype}_av_w0"]["clips_per_s"] / zarr["clips_per_s"] if zarr else None
    return result


# -------------------------------------------------------------------------------------------- report


def fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def step_table(r: dict) -> str:
    runs, b = r["runs"], r["batch"]
    lines = [f"(a) One head training step, B={b}: T={r['frames']} x N={r['num_tokens']} x D={r['vision_dim']} "
             f"video tokens, {r['audio_frames']} x {r['audio_dim']} audio frames; heads {r['head_params'] / 1e6:.2f} M "
             f"params, encoders {r['encoder_params'] / 1e6:.0f} M params ({PRESET}); s/step = median of the timed steps",
             "| batch from | s/step | clips/s | vision enc. s | audio enc. s | head step s | steps | torch threads | "
             "other load |", "|---|---|---|---|---|---|---|---|---|"]
    for key in ("cached", "cached_encoder_threads"):
        if key in runs:
            c = runs[key]
            lines.append(f"| cached tokens | {c['s']:.3f} | {b / c['s']:.1f} | - | - | {c['s']:.3f} | "
                         f"{r['cached_steps']} | {c['threads']} | {fmt(c['other_load_cores'])} |")
    e = runs["encoders"]
    lines.append(f"| encoders on the fly | {e['s']:.2f} | {b / e['s']:.2f} | {e['vision_s']:.2f} | {e['audio_s']:.2f} | "
                 f"{e['heads_s']:.3f} | {r['encoder_steps']} | {r['encoder_threads']} enc., {r['head_threads']} heads | "
                 f"{fmt(e['other_load_cores'])} |")
    lines.append(f"encoders on the fly / cached tokens: {r['ratio']:.0f}x (head steps on {r['head_threads']} "
                 f"thread{'s' * (r['head_threads'] > 1)} in both)")
    if "cached_encoder_threads" in runs:
        lines.append(f"encoders on the fly / cached tokens on {r['encoder_threads']} threads: "
                     f"{r['ratio_cached_encoder_threads']:.0f}x")
    return "\n".join(lines)


def loader_table(r: dict, step: dict | None) -> str:
    lines = [f"(b) Loader, {r['clips']} base-size clips ({r['raw_token_bytes'] / 2**30:.2f} GiB of float16 tokens; "
             f"Zarr {r['zarr_bytes'] / 2**30:.2f} GiB (int8 {r['int8_zarr_bytes'] / 2**30:.2f} GiB), HDF5 "
             f"{r['h5_bytes'] / 2**30:.2f} GiB on disk), batch {r['loader_batch']}, "
             f"{'cold' if r['cold'] else 'warm'} page cache; device_*: `dfer train --in-memory`",
             "| source | modalities | workers | clips/s | first pass clips/s | s per pass | device load s | other load |",
             "|---|---|---|---|---|---|---|---|"]
    for p in r["passes"].values():
        lines.append(f"| {p['source']} | {p['modalities']} | {p['workers']} | {p['clips_per_s']:.1f} | "
                     f"{p['first_pass_clips_per_s']:.1f} | {p['seconds']:.2f} | {fmt(p['in_memory_load_s'], '.1f')} | "
                     f"{fmt(p['other_load_cores'])} |")
    for dtype in ("int8", "float16"):
        lines.append(f"device-resident {dtype} / Zarr float16 with 2 workers, av: "
                     f"{fmt(r[f'speedup_vs_zarr_av_2workers_{dtype}'], '.1f')}x")
    if step:
        lines.append(f"head step (a), cached tokens: {step['batch'] / step['runs']['cached']['s']:.1f} clips/s")
    return "\n".join(lines)


def figures(step: dict | None, loader: dict | None, args, wall: float) -> dict:
    out: dict = {"device": args.device, "cpu_cores": cores(), "cpu": cpu_model(), "torch": torch.__version__,
                 "seed": args.seed}
    if args.device == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
    if step:
        for key, value in step.items():
            if key != "runs":
                out[f"step_{key}"] = round(value, 4) if isinstance(value, float) else value
        for name, run in step["runs"].items():
            for key, value in run.items():
                value = [round(v, 4) for v in value] if isinstance(value, list) else \
                    round(value, 4) if isinstance(value, float) else value
                out[f"step_{name}_{key}"] = value
    if loader:
        for key, value in loader.items():
            if key != "passes":
                out[f"loader_{key}"] = round(value, 2) if isinstance(value, float) else value
        for key, p in loader["passes"].items():
            out[f"loader_{key}_clips_per_s"] = round(p["clips_per_s"], 1)
            out[f"loader_{key}_first_pass_clips_per_s"] = round(p["first_pass_clips_per_s"], 1)
            if p["in_memory_load_s"] is not None:
                out[f"loader_{key}_in_memory_load_s"] = round(p["in_memory_load_s"], 2)
            if p["other_load_cores"] is not None:
                out[f"loader_{key}_other_load_cores"] = round(p["other_load_cores"], 2)
            out[f"loader_{key}_attempts"] = p["attempts"]
        for dtype, name in (("int8", ""), ("float16", "_float16")):  # int8: the headline
            out[f"speedup_vs_zarr_av_2workers{name}"] = out.pop(f"loader_speedup_vs_zarr_av_2workers_{dtype}")
        if step:  # what the loaders feed, beside them
            out["step_cached_clips_per_s"] = round(step["batch"] / step["runs"]["cached"]["s"], 1)
        zarr = loader["passes"].get("zarr_av_w0")
        if step and zarr:  # a cached step that also reads its batch (workers 0: no overlap)
            with_read = step["runs"]["cached"]["s"] + step["batch"] / zarr["clips_per_s"]
            out["step_cached_with_zarr_read_w0_s"] = round(with_read, 4)
            out["step_ratio_with_zarr_read_w0"] = round(step["runs"]["encoders"]["s"] / with_read, 2)
    out["bench_wall_s"] = round(wall, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["step", "loader"], choices=["step", "loader"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=8, help="clips per training step (a)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2, help="timed steps on the encoder path (~25 s each on 2 cores)")
    parser.add_argument("--cached-steps", type=int, default=10, help="timed steps on cached tokens")
    parser.add_argument("--cached-warmup", type=int, default=2, help="untimed cached steps before those")
    parser.add_argument("--encoder-threads", type=int, help="torch threads for the encoders (default: all cores)")
    parser.add_argument("--head-threads", type=int, help="torch threads for the head step (default: dfer train's)")
    parser.add_argument("--clips", type=int, default=256, help="clips in the synthetic store (b); 4.8 MB each")
    parser.add_argument("--loader-batch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--cold", action="store_true", help="evict the store from the page cache before each pass")
    parser.add_argument("--seed", type=int, default=0)
    add_contention_options(parser, retries=1)
    parser.add_argument("--out", type=Path, help="keep the stores and results.json here (default: a temp folder)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    if device.type == "cpu":
        keep_freed_memory()  # as `dfer train` runs on a CPU (dfer.host_memory): every measurement below gets it
    keep = args.out is not None
    work = args.out.resolve() if keep else Path(tempfile.mkdtemp(prefix="dfer-bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    step = loader = None
    try:
        if "step" in args.parts:
            step = bench_step(args, device, started)
        if "loader" in args.parts:
            loader = bench_loader(args, work, device, started)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"Stage-2 training speed on {args.device}, {cores()} CPU cores ({cpu_model()}), torch {torch.__version__}")
    if step:
        print(step_table(step))
    if loader:
        print()
        print(loader_table(loader, step))
    print("other load: cores kept busy by other work on the machine while measuring (0 = it had the machine)")
    result = figures(step, loader, args, time.perf_counter() - started)
    if keep:
        (work / "results.json").write_text(json.dumps({"figures": result, "step": step, "loader": loader},
                                                      indent=2, default=str) + "\n")
        print(f"stores and results.json kept in {work}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
