"""Stage-1 extraction speed and memory on real clips: clips/s and peak RSS per encoder preset.

    python bench/extract.py                                   # tiny + base-random, CPU: ~2 min on 2 idle cores
    python bench/extract.py --presets tiny --device cuda --out runs/bench-extract

What is measured, per preset:
- `av`: the real audio-visual clips of ../shared/data (6 CREMA-D .flv + 2 RAVDESS .mp4, one without an audio
  track), listed through a `manifest` CSV of symlinks with distinct names (the manifest adapter derives the
  clip id from the path, so repeating a row would be a duplicate; `--av-clips` > 8 repeats the files under
  new names). Decode + MTCNN face track + both encoders + Zarr writes, keep_media on (the default).
- `audio`: RAVDESS speech FLACs (the first `--audio-clips` files of Actor_01, Actor_02, ...) through the
  `ravdess` adapter: decode + audio encoder + Zarr writes, no face work.
- the tiny preset again on 4x the AV clips (`--growth`), to show that peak RSS does not grow with the number
  of clips: the peak ratio, and the slope of the current RSS sampled after every clip written.

On a machine shared with other work, throughput drops far more than in proportion (two torch threads on two
cores, one of them taken, slow MTCNN several-fold). Each measurement therefore records the cores other
processes kept busy meanwhile (`other load`), waits up to `--quiet-wait` s for a quiet machine first, and is
repeated up to `--retries` times when it was contended (while the bench has run less than `--budget` s),
keeping the least contended run. Read a row whose other load is well above 0 as a lower bound.

Each measurement runs in a fresh process (`python bench/extract.py --child ...`), so the models load once
and `ru_maxrss` is that extraction alone. Inside it `dfer.extract.pipeline.run` runs unchanged; the bench
only wraps module-level names that `run` looks up at call time (`load_encoders`, `_extract_clips`,
`decode_clip`, `FaceCropper`, `encode_batch`, `ClipStore.write_clip`) with timers, so:
- build_s = encoder construction (`load_encoders`), excluded from throughput;
- extract_s = the whole clip loop (`_extract_clips`: decode, faces, encoders, writes), clips/s = clips / extract_s;
- store creation, MTCNN construction and the final summary are in total_s only.
The first batch pays one-off costs (thread pools, allocator warm-up); with few clips that is part of the
figure, as it is for a short real run.

The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from machine import add_contention_options, cpu_model, least_contended, machine_busy_s  # bench/machine.py

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RAVDESS_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]  # EE 01..08


# ----------------------------------------------------------------------------------------------- inputs


def av_sources(data: Path) -> list[tuple[Path, str, str]]:
    """(file, label, speaker) of every real AV clip: CREMA-D VideoFlash/*.flv and ravdess_av/Actor_*/*.mp4."""
    sources = []
    for path in sorted((data / "cremad" / "VideoFlash").glob("*.flv")):
        actor, _, emotion, _ = path.stem.split("_")  # 1001_DFA_ANG_XX
        sources.append((path, emotion.lower(), actor))
    for path in sorted((data / "ravdess_av").glob("Actor_*/*.mp4")):
        fields = path.stem.split("-")  # MM-VC-EE-II-SS-RR-AA
        sources.append((path, RAVDESS_EMOTIONS[int(fields[2]) - 1], fields[6]))
    return sources


def make_av_manifest(data: Path, folder: Path, count: int) -> Path:
    """folder/manifest-<count>.csv listing `count` AV clips: symlinks r00_<name>, r01_<name>, ... cycling
    over the real files, with absolute paths."""
    sources = av_sources(data)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        source, label, speaker = sources[i % len(sources)]
        link = folder / f"r{i // len(sources):02d}_{source.name}"
        if not link.exists():
            link.symlink_to(source.resolve())
        rows.append([str(link.absolute()), label, speaker, "test"])
    manifest = folder / f"manifest-{count}.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker", "split"])
        writer.writerows(rows)
    return manifest


def make_audio_root(data: Path, folder: Path, count: int) -> Path:
    """A RAVDESS root with the first `count` speech FLACs (by actor, then name) as per-file symlinks.

    Real Actor_NN folders with symlinked files, not symlinked folders: Path.rglob does not descend into
    symlinked directories on Python < 3.13.
    """
    files = sorted((data / "ravdess_speech_16k").glob("Actor_*/*.flac"), key=lambda p: (p.parent.name, p.name))
    if len(files) < count:
        raise SystemExit(f"--audio-clips {count}: only {len(files)} speech files under {data}")
    for path in files[:count]:
        actor = folder / path.parent.name
        actor.mkdir(parents=True, exist_ok=True)
        link = actor / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return folder


# ------------------------------------------------------------------------------------ child: one measurement


def child(spec: dict) -> dict:
    """Run one extraction with stage timers; returns the figures (printed as the child's last stdout line)."""
    import torch

    from dfer.extract import pipeline
    from dfer.store.clip_store import ClipStore

    for name in ("load_encoders", "_extract_clips", "decode_clip", "FaceCropper", "encode_batch"):
        if not hasattr(pipeline, name):
            raise SystemExit(f"bench/extract.py: dfer.extract.pipeline.{name} is gone; update the bench's timers")

    seconds = {"build": 0.0, "extract": 0.0, "cpu": 0.0, "decode": 0.0, "faces": 0.0, "encode": 0.0, "write": 0.0}
    marks: dict[str, float] = {}

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[key] += time.perf_counter() - start
        return wrapper

    load_encoders = timed("build", pipeline.load_encoders)

    def load_and_mark(*args, **kwargs):
        result = load_encoders(*args, **kwargs)
        marks["rss_after_build_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return result

    class TimedCropper(pipeline.FaceCropper):
        many = timed("faces", pipeline.FaceCropper.many)

    pipeline.load_encoders = load_and_mark
    extract_clips = timed("extract", pipeline._extract_clips)

    # CPU seconds of the clip loop too: CPU s / wall s near the core count means the loop had the cores to
    # itself; much lower means it waited (on I/O, or on other work sharing the machine).
    def extract_and_count_cpu(*args, **kwargs):
        before = resource.getrusage(resource.RUSAGE_SELF)
        try:
            return extract_clips(*args, **kwargs)
        finally:
            after = resource.getrusage(resource.RUSAGE_SELF)
            seconds["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    pipeline._extract_clips = extract_and_count_cpu
    pipeline.decode_clip = timed("decode", pipeline.decode_clip)
    pipeline.FaceCropper = TimedCropper
    pipeline.encode_batch = timed("encode", pipeline.encode_batch)
    write_clip = timed("write", ClipStore.write_clip)
    rss_trace: list[float] = []  # current (not peak) RSS in MiB after each clip is written

    def write_and_sample(*args, **kwargs):
        write_clip(*args, **kwargs)
        rss_trace.append(current_rss_mib())

    ClipStore.write_clip = write_and_sample

    cfg = pipeline.ExtractConfig(
        dataset=spec["dataset"], root=Path(spec["root"]), out=Path(spec["out"]), preset=spec["preset"],
        frames=spec["frames"], batch=spec["batch"], device=spec["device"], progress=False,
    )
    start = time.perf_counter()
    summary = pipeline.run(cfg)
    total = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    if spec["device"] == "cuda":
        gpu_peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        gpu_peak_mib = None
    return {
        "clips": summary.clips, "done": summary.done, "failures": summary.failures, "problems": summary.problems,
        "build_s": seconds["build"], "extract_s": seconds["extract"], "extract_cpu_s": seconds["cpu"], "total_s": total,
        "stage_s": {k: seconds[k] for k in ("decode", "faces", "encode", "write")},
        "clips_per_s": summary.done / seconds["extract"] if seconds["extract"] > 0 else None,
        "peak_rss_mib": peak_kb / 1024, "rss_after_build_mib": marks.get("rss_after_build_kb", 0) / 1024,
        "gpu_peak_mib": gpu_peak_mib, "torch_threads": torch.get_num_threads(), "rss_trace_mib": rss_trace,
    }


def current_rss_mib() -> float:
    """Resident set size now (Linux /proc), in MiB; NaN elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_slope(trace: list[float], skip: int) -> float | None:
    """Least-squares slope (MiB per clip) of current RSS over the clips after the first `skip` (one batch)."""
    ys = trace[skip:]
    if len(ys) < 2:
        return None
    xs = range(len(ys))
    mx, my = sum(xs) / len(ys), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


# -------------------------------------------------------------------------------- parent: plan and report




def measure(name: str, spec: dict, log: Path) -> dict | None:
    """Run one measurement in a fresh process; None (with a message) when it fails."""
    print(f"[bench] {name}: {spec['preset']} preset, {spec['count']} {spec['kind']} clips ...", flush=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    shutil.rmtree(spec["out"], ignore_errors=True)  # a store left by an earlier run would resume: 0 clips to do
    busy_before, child_before, start = machine_busy_s(), children_cpu_s(), time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True)
    wall = time.perf_counter() - start
    # Cores kept busy by everything else on the machine while this measurement ran (0 = it had the machine).
    other_cores = (machine_busy_s() - busy_before - (children_cpu_s() - child_before)) / wall
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        print(f"[bench] {name} FAILED (exit {proc.returncode}); last lines of {log}:\n{tail}", flush=True)
        return None
    result = json.loads(lines[-1])
    result["other_load_cores"] = max(other_cores, 0.0) if other_cores == other_cores else None
    if result["failures"] or result["done"] != spec["count"]:
        print(f"[bench] {name}: {result['done']}/{spec['count']} clips done; failures: {result['failures']}")
    print(f"[bench] {name}: {result['clips_per_s']:.2f} clips/s, peak RSS {result['peak_rss_mib']:.0f} MiB "
          f"(build {result['build_s']:.1f} s, extract {result['extract_s']:.1f} s wall, "
          f"{result['extract_cpu_s']:.1f} s CPU; other work on the machine: {other_cores:.2f} cores)", flush=True)
    return result




def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime




def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(results: dict[str, dict]) -> str:
    header = ("| run | clips | clips/s | s/clip | decode | faces | encoders | writes | build s | "
              "CPU use | other load | RSS after build MiB | peak RSS MiB |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, r in results.items():
        done = max(r["done"], 1)
        per = {k: v / done for k, v in r["stage_s"].items()}
        lines.append(
            f"| {name} | {r['done']} | {r['clips_per_s']:.2f} | {r['extract_s'] / done:.2f} | "
            f"{per['decode']:.2f} | {per['faces']:.2f} | {per['encode']:.2f} | {per['write']:.3f} | "
            f"{r['build_s']:.1f} | {r['extract_cpu_s'] / r['extract_s']:.2f} | {fmt(r['other_load_cores'])} | "
            f"{r['rss_after_build_mib']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "base-random"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, help="keep manifests, stores, logs and results.json here (default: temp)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared real-data folder")
    parser.add_argument("--av-clips", type=int, default=8,
                        help="N AV clips per preset (8 = each real file once; 0: no AV runs)")
    parser.add_argument("--growth", type=int, default=4,
                        help="tiny is also run on growth x N AV clips (keep N >= --batch: the peak is per batch)")
    parser.add_argument("--audio-clips", type=int, default=60,
                        help="RAVDESS speech clips (60 = all of Actor_01; 0: no audio runs)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    add_contention_options(parser, retries=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    have_av = args.av_clips > 0 and bool(av_sources(args.data))
    have_audio = args.audio_clips > 0 and any((args.data / "ravdess_speech_16k").glob("Actor_*/*.flac"))
    if not have_av and not have_audio:
        reason = ("--av-clips and --audio-clips are 0" if args.av_clips <= 0 and args.audio_clips <= 0
                  else f"no real data under {args.data} (pass --data DIR)")
        print(f"[bench] SKIPPED: nothing to measure: {reason}")
        print(json.dumps({"skipped": reason}))
        return 0
    if not have_av and args.av_clips > 0:
        print(f"[bench] skipping the AV measurements: no cremad/VideoFlash/*.flv or ravdess_av/Actor_*/*.mp4 "
              f"under {args.data}")
    if not have_audio and args.audio_clips > 0:
        print(f"[bench] skipping the audio measurements: no ravdess_speech_16k/Actor_*/*.flac under {args.data}")

    keep = args.out is not None
    work = args.out.resolve() if keep else Path(tempfile.mkdtemp(prefix="dfer-bench-extract-"))
    work.mkdir(parents=True, exist_ok=True)
    n, big = args.av_clips, args.av_clips * args.growth

    plan: list[tuple[str, str, dict]] = []  # (result key, table name, spec)
    for preset in args.presets:
        key = preset.replace("-", "_")
        if have_av:
            av = dict(dataset="manifest", kind="AV", preset=preset)
            plan.append((f"{key}_av", f"{preset} AV", dict(av, root=str(make_av_manifest(args.data, work / "av", n)),
                                                            count=n)))
            if preset == "tiny" and args.growth > 1:
                root = str(make_av_manifest(args.data, work / "av", big))
                plan.append((f"{key}_av{args.growth}x", f"{preset} AV x{args.growth}", dict(av, root=root, count=big)))
        if have_audio:
            root = str(make_audio_root(args.data, work / "speech", args.audio_clips))
            plan.append((f"{key}_audio", f"{preset} audio",
                         dict(dataset="ravdess", kind="audio", preset=preset, root=root, count=args.audio_clips)))

    results: dict[str, dict] = {}
    names: dict[str, str] = {}
    started = time.perf_counter()
    for key, name, spec in plan:
        spec.update(out=str(work / "stores" / key), frames=args.frames, batch=args.batch, device=args.device)
        result = least_contended(name, lambda: measure(name, spec, work / f"{key}.log"), args, started)
        if result is not None:
            results[key], names[key] = result, name

    print()
    print(f"Stage-1 extraction on {args.device}, {os.cpu_count()} CPU cores ({cpu_model()}), {args.frames} frames, "
          f"batch {args.batch}, keep_media on")
    print(table({names[k]: r for k, r in results.items()}))
    print("decode/faces/encoders/writes: s per clip in each stage; CPU use: CPU s / wall s of the clip loop "
          f"({os.cpu_count()} = all cores); other load: cores busy with other work during the run (contention "
          "slows the faces and encoders far more than proportionally); RSS after build: peak before the first clip")

    figures: dict = {"device": args.device, "cpu_cores": os.cpu_count(), "cpu": cpu_model(), "frames": args.frames,
                     "batch": args.batch}
    for key, r in results.items():
        figures[f"{key}_clips"] = r["done"]
        figures[f"{key}_clips_per_s"] = round(r["clips_per_s"], 3)
        figures[f"{key}_peak_rss_mib"] = round(r["peak_rss_mib"], 1)
        figures[f"{key}_rss_after_build_mib"] = round(r["rss_after_build_mib"], 1)
        figures[f"{key}_build_s"] = round(r["build_s"], 2)
        figures[f"{key}_cpu_use"] = round(r["extract_cpu_s"] / r["extract_s"], 2)
        if r["other_load_cores"] is not None:
            figures[f"{key}_other_load_cores"] = round(r["other_load_cores"], 2)
        if r["gpu_peak_mib"] is not None:
            figures[f"{key}_gpu_peak_mib"] = round(r["gpu_peak_mib"], 1)
    small, large = results.get("tiny_av"), results.get(f"tiny_av{args.growth}x")
    if small and large:
        ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        extra_small = small["peak_rss_mib"] - small["rss_after_build_mib"]
        extra_large = large["peak_rss_mib"] - large["rss_after_build_mib"]
        trace = large["rss_trace_mib"]
        slope = rss_slope(trace, args.batch)
        figures["rss_growth_ratio"] = round(ratio, 3)
        figures["rss_growth_clips"] = [n, big]
        figures["rss_above_build_mib"] = [round(extra_small, 1), round(extra_large, 1)]
        if slope is not None:
            figures["rss_slope_mib_per_clip"] = round(slope, 2)
        print(f"\nPeak RSS, tiny preset: {small['peak_rss_mib']:.0f} MiB for {n} clips, "
              f"{large['peak_rss_mib']:.0f} MiB for {big} clips: ratio {ratio:.3f} "
              f"(above the post-build level: {extra_small:.0f} vs {extra_large:.0f} MiB)")
        if slope is not None:
            print(f"Current RSS over the {big}-clip run: {trace[args.batch - 1]:.0f} MiB after the first batch, "
                  f"{trace[-1]:.0f} MiB after the last clip, slope {slope:+.2f} MiB/clip after the first batch")
    failed = [name for key, name, _ in plan if key not in results]
    if failed:
        figures["failed"] = failed
    figures["bench_wall_s"] = round(time.perf_counter() - started, 1)
    if keep:
        (work / "results.json").write_text(json.dumps({"figures": figures, "runs": results}, indent=2) + "\n")
        print(f"stores, logs and results.json kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
