"""Faces sized to the face (issue 21): today's settings against the new ones, in one run, on one machine.

    python bench/faces.py                      # everything, a few minutes on 2 cores
    python bench/faces.py --serve-seconds 0    # without the serve load test (the slowest part)

"old" is what dfer did before issue 21: facenet-pytorch's `MTCNN.detect` on frames shrunk to 360 pixels, the whole
pyramid down to 20-pixel faces (`OriginalDetector`, the code of dfer/faces/detect.py then), on frames decoded at full
size. "new" is the default now: `large-first` detection (dfer/faces/detect.py) on frames decoded to a shorter side
of at most 720 (dfer/faces/settings.py). Figures:

- detection: ms per clip (16 frames, one thread, the best of 2) on the real clips in ../shared/data (6 CREMA-D, 2
  RAVDESS AV), or the bundled CREMA-D sample when that folder is absent, and on two synthetic frames with real faces
  pasted in (one small face alone; a large and a smaller face); per clip the worst IoU between a new box and the old
  box of the same face, over every frame, the frames whose boxes did not move (by under 0.01 pixels), the worst IoU
  of the crop boxes the tracker makes of them, and whether `face_found` is identical on every frame; and the noise
  floor of those IoUs: the old detector against itself on the same frames with each value moved by at most one grey
  level (`noise_floor_min_iou`).
- predict: seconds per stage of the fastest of 5 `Predictor.predict_file` calls (what `dfer predict` runs) on a 3 s
  1080p clip with a real face, for runs made here with the `lite` and `tiny` presets (6 sample clips, 16 frames, 1
  epoch: the stage times do not depend on training), old and new, their calls alternating; `timeline_video_s_per_s`:
  `predict --timeline` on the same clip.
- extract: AV extraction clips/s of the 6 sample clips with the tiny preset, old (`face_detect: legacy`) and new,
  and with `lite` (new), each into a fresh store after the runs are made, so none pays the process's first calls.
- rss: peak RSS of a fresh process predicting the 3 s 1080p clip (old and new) and a 4 s 7680x4320 grey H.264 file
  (new only: the old settings took 17.5 GB in the issue); and `dfer serve`'s answer to the 8K upload (413 at the
  default pixel budget, and the answer with the budget off) with the server's peak RSS.
- serve: bench/serve_load.py at 1 and 4 clients for `--serve-seconds` each against `dfer serve` on the lite run,
  new (its defaults), and old: its Predictor detecting and decoding as before issue 21 (`as_old`), on one worker
  with every core's thread (the default then). The old server decodes ahead too (that part is not undone).

CPU only: no GPU was used or measured. Timings wait for a quiet machine (no `bench/train.py` running) but the machine
is shared; `other_load_cores` says how busy it was. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "samples" / "cremad" / "VideoFlash"
FRAMES = 16
NOISE = np.random.default_rng(0)


class OriginalDetector:
    """dfer's FaceDetector before issue 21, verbatim: all frames to float, shrunk to 360, facenet's MTCNN.detect."""

    def __init__(self, min_prob: float = 0.9, detect_size: int = 360):
        import torch
        from facenet_pytorch import MTCNN

        self.min_prob, self.detect_size, self.torch = min_prob, detect_size, torch
        self.mtcnn = MTCNN(keep_all=True)

    def __call__(self, frames: np.ndarray):
        import torch.nn.functional as F

        from dfer.faces.track import Detections

        torch = self.torch
        frames = np.asarray(frames)  # (T, H, W, 3): `detect_clips` passes a list of frames
        scale = min(1.0, self.detect_size / min(frames.shape[1:3]))
        x = torch.from_numpy(frames).float()  # (T, H, W, 3)
        if scale < 1.0:
            x = F.interpolate(x.permute(0, 3, 1, 2), scale_factor=scale, mode="bilinear", antialias=True)
            x = x.permute(0, 2, 3, 1)
        boxes, probs, points = self.mtcnn.detect(x, landmarks=True)
        out = []
        for b, p, q in zip(boxes, probs, points):
            if b is None:
                b, p, q = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
            keep = np.asarray(p, np.float32) >= self.min_prob
            out.append(Detections(np.asarray(b, np.float32)[keep] / scale, np.asarray(p, np.float32)[keep],
                                  np.asarray(q, np.float32)[keep] / scale))
        return out


def wait_for_quiet(limit: float = 1800) -> None:
    """Wait while another developer's timing bench (bench/train.py) runs on this shared machine."""
    deadline = time.monotonic() + limit
    while subprocess.run(["pgrep", "-f", "bench/train.py"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            print("bench/train.py still running; measuring anyway", file=sys.stderr)
            return
        time.sleep(10)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def real_clips() -> list[Path]:
    clips = sorted((SHARED / "cremad" / "VideoFlash").glob("*.flv")) + sorted((SHARED / "ravdess_av").glob("*/*.mp4"))
    return clips or sorted(SAMPLE.glob("*.flv"))


def synthetic_scenes() -> dict[str, np.ndarray]:
    """(T, 360, 640, 3) grey frames with the sample's real head pasted in: a small face alone (about 18 px, only the
    full pyramid's finest levels find it), and a large face beside a smaller one (about 92 and 64 px)."""
    import torch
    import torch.nn.functional as F

    from dfer.media.decode import decode_clip

    head = decode_clip(sorted(SAMPLE.glob("*.flv"))[0], None, frames=1).frames[0][30:270, 120:320].copy()

    def resized(image, scale):
        x = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(), scale_factor=scale,
                          mode="bilinear", antialias=True)
        return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    def scene(pastes):
        out = np.full((FRAMES, 360, 640, 3), 128, np.uint8)
        for t in range(FRAMES):
            for image, x, y in pastes:
                out[t, y + t: y + t + image.shape[0], x + t: x + t + image.shape[1]] = image
        return out

    return {"synthetic_small_face": scene([(resized(head, 0.2), 300, 150)]),
            "synthetic_two_faces": scene([(head, 40, 40), (resized(head[:, ::-1].copy(), 0.7), 380, 100)])}


def agreement(old, new, shape) -> dict:
    """Worst IoU of matching detections (each old face against the new face nearest it), of the tracker's crop
    boxes, and whether face_found and the face counts are identical."""
    from dfer.faces.track import candidate_tracks, plan_track

    worst = 1.0
    same_counts = all(len(a.boxes) == len(b.boxes) for a, b in zip(old, new))
    unmoved = sum(len(a.boxes) == len(b.boxes) and bool(np.allclose(a.boxes, b.boxes, rtol=0, atol=0.01))
                  for a, b in zip(old, new))  # frames whose every box moved by under 0.01 pixels
    for a, b in zip(old, new):
        for box in a.boxes:
            worst = min(worst, max((iou(box, other) for other in b.boxes), default=0.0))
    plans = []
    for dets in (old, new):
        tracks = candidate_tracks(dets)
        chosen = tracks[0] if tracks else np.full(len(dets), -1)
        plans.append(plan_track(dets, chosen, shape, 224, 0.25, 5))
    return {"min_iou": round(worst, 4), "min_crop_iou": round(min(iou(a, b) for a, b in zip(plans[0].box,
                                                                                          plans[1].box)), 4),
            "face_found_identical": bool(np.array_equal(plans[0].face_found, plans[1].face_found)),
            "face_counts_identical": same_counts, "faces_found": int(sum(len(b.boxes) for b in new)),
            "frames_unmoved": int(unmoved)}


def bench_detection() -> dict:
    import torch

    from dfer.faces.detect import FaceDetector
    from dfer.media.decode import decode_clip

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the issue measured; 2 threads on 2 shared cores mostly measure the neighbours
    old, new = OriginalDetector(), FaceDetector()
    inputs = {p.name: decode_clip(p, None, FRAMES, max_short_side=None).frames for p in real_clips()}
    inputs.update(synthetic_scenes())
    clips = {}
    for name, frames in inputs.items():
        timings = {}
        for label, detector in (("old", old), ("new", new)):
            best = np.inf
            for _ in range(2):
                started = time.perf_counter()
                found = detector(frames)
                best = min(best, time.perf_counter() - started)
            timings[label] = (best, found)
        # the old detector against itself on the same frames with invisible noise (each value +-1 grey level): how
        # far MTCNN's own boxes move when nothing that matters changes, the floor any IoU figure sits on
        noisy = np.clip(frames + NOISE.integers(-1, 2, frames.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        floor = agreement(timings["old"][1], old(noisy), frames.shape[1:3])
        clips[name] = {"frames": f"{frames.shape[2]}x{frames.shape[1]}", "old_ms": round(timings["old"][0] * 1e3),
                       "new_ms": round(timings["new"][0] * 1e3),
                       "speedup": round(timings["old"][0] / timings["new"][0], 2),
                       "fallback_frames": new.last_fallback_frames,
                       **agreement(timings["old"][1], timings["new"][1], frames.shape[1:3]),
                       "noise_floor_min_iou": floor["min_iou"], "noise_floor_min_crop_iou": floor["min_crop_iou"]}
        print(f"detection {name}: {clips[name]}", file=sys.stderr)
    torch.set_num_threads(threads)
    real = [c for n, c in clips.items() if not n.startswith("synthetic")]
    return {"clips": clips, "threads": 1,
            "real_old_ms_per_clip": round(np.mean([c["old_ms"] for c in real])),
            "real_new_ms_per_clip": round(np.mean([c["new_ms"] for c in real])),
            "real_speedup": round(sum(c["old_ms"] for c in real) / sum(c["new_ms"] for c in real), 2),
            "real_min_iou": min(c["min_iou"] for c in real),
            "real_frames_unmoved": f"{sum(c['frames_unmoved'] for c in real)} of {FRAMES * len(real)}",
            "real_min_crop_iou": min(c["min_crop_iou"] for c in real),
            "real_face_found_identical": all(c["face_found_identical"] for c in real),
            "real_noise_floor_min_iou": min(c["noise_floor_min_iou"] for c in real),
            "real_noise_floor_min_crop_iou": min(c["noise_floor_min_crop_iou"] for c in real),
            "small_face_found": clips["synthetic_small_face"]["faces_found"] >= FRAMES,
            "two_faces_found": clips["synthetic_two_faces"]["faces_found"] >= 2 * FRAMES}


def make_run(folder: Path, preset: str) -> Path:
    """A run of the 6 sample clips (16 frames, 1 epoch): the stage times below do not depend on training."""
    from dfer.testing.sample import SMALL_HEADS
    from dfer.train.config import make_config
    from dfer.train.run import train

    extraction_clips_per_s(folder / f"store-{preset}", preset)
    run = folder / f"run-{preset}"
    train(folder / f"store-{preset}", run, make_config(None, fold="none", epochs=1, heads=SMALL_HEADS), show=False)
    return run


def extraction_clips_per_s(store: Path, preset: str, **settings) -> float:
    """AV extraction of the 6 sample clips, encoders' build included (the first one in a process also pays the
    imports and first calls, so the timed ones come after the runs are made)."""
    from dfer.extract.pipeline import ExtractConfig, run as extract

    started = time.perf_counter()
    summary = extract(ExtractConfig(dataset="cremad", root=SAMPLE.parent, out=store, preset=preset, frames=FRAMES,
                                    progress=False, **settings))
    return summary.done / (time.perf_counter() - started)


def extraction_old(folder: Path) -> float:
    import dfer.faces.cropper as cropper_module

    class Original(cropper_module.FaceDetector):  # the legacy settings, with the original code doing the detection
        def __init__(self, *args, **kwargs):
            self.original, self.batch_frames = OriginalDetector(), 0  # one clip a call, as before

        def __call__(self, frames):
            return self.original(frames)

    saved, cropper_module.FaceDetector = cropper_module.FaceDetector, Original
    try:
        return extraction_clips_per_s(folder / "store-tiny-old", "tiny", face_detect="legacy")
    finally:
        cropper_module.FaceDetector = saved


def as_old(predictor) -> None:
    """Make a loaded Predictor detect and decode as dfer did before issue 21."""
    predictor.cropper.detect = OriginalDetector()
    predictor.frame_short_side = None


def write_face_clip(path: Path, seconds: float, size: tuple[int, int]) -> Path:
    from dfer.media.decode import decode_clip
    from dfer.testing.synth import write_clip

    head = decode_clip(sorted(SAMPLE.glob("*.flv"))[0], None, frames=1).frames[0][30:270, 120:320].copy()
    return write_clip(path, seconds=seconds, size=size, face=head)


def write_8k(path: Path) -> Path:
    """4 s of grey 7680x4320 H.264 at 25 fps (the issue's ffmpeg lavfi file), written with PyAV; ~100 KB."""
    import av

    if path.exists():
        return path
    width, height = 7680, 4320
    grey = av.VideoFrame.from_ndarray(np.full((height * 3 // 2, width), 128, np.uint8), format="yuv420p")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(100):
            grey.pts = i
            for packet in stream.encode(grey):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


PREDICT_REPEATS = 5


def bench_predict(run: Path, clip: Path) -> dict:
    """Old and new side by side: their calls alternate, so a slow spell of the shared machine falls on both, and each
    keeps its fastest of PREDICT_REPEATS (one call on 2 shared cores swings by a third)."""
    from dfer.media.probe import stated_duration
    from dfer.predict.predictor import Predictor
    from dfer.predict.timeline import HOP_FRACTION, FileTimeline, default_window

    predictors = {"old": Predictor(run), "new": Predictor(run)}
    as_old(predictors["old"])
    fastest = {label: (np.inf, None) for label in predictors}
    for predictor in predictors.values():
        predictor.predict_file(clip)  # warm-up: first-call costs
    for _ in range(PREDICT_REPEATS):
        for label, predictor in predictors.items():
            started = time.perf_counter()
            answer = predictor.predict_file(clip)
            elapsed = time.perf_counter() - started
            if elapsed < fastest[label][0]:
                fastest[label] = (elapsed, answer)
    out = {}
    for label, predictor in predictors.items():
        total, result = fastest[label]
        window = default_window(predictor.config)[0]
        started = time.perf_counter()
        rows = list(FileTimeline(predictor, clip, window, window * HOP_FRACTION))
        timeline_s = time.perf_counter() - started
        out[label] = {"seconds": result["seconds"], "total_s": round(total, 3),
                      "face_found_ratio": result["face_found_ratio"], "top1": result["top1"],
                      "timeline_windows": len(rows),
                      "timeline_video_s_per_s": round(stated_duration(clip) / timeline_s, 2)}
    out["speedup"] = round(out["old"]["total_s"] / out["new"]["total_s"], 2)
    out["faces_speedup"] = round(out["old"]["seconds"]["faces"] / out["new"]["seconds"]["faces"], 2)
    return out


# A child's peak RSS is VmHWM, its own address space's high-water mark. Not ru_maxrss: Linux carries the pre-exec
# high-water mark of the forked copy (this bench process, models loaded) into the child's, so every child read 2290 MB.
PEAK_RSS = """
def peak_rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
"""

RSS_CHILD = PEAK_RSS + """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from dfer.predict.predictor import Predictor
predictor = Predictor({run!r})
if {old!r}:
    from faces import as_old
    as_old(predictor)
started = time.perf_counter()
result = predictor.predict_file({clip!r})
print(json.dumps({{"seconds": round(time.perf_counter() - started, 2), "top1": result["top1"],
                  "peak_rss_mb": peak_rss_mb()}}))
"""

SERVE_CHILD = PEAK_RSS + """
import json, sys, time
sys.path.insert(0, {root!r})
from fastapi.testclient import TestClient
from dfer.predict.predictor import Predictor
from dfer.serve.app import create_app
predictor = Predictor({run!r})
with TestClient(create_app(predictor, max_upload_mb=50, max_video_pixels={pixels!r})) as client:
    started = time.perf_counter()
    answer = client.post("/predict", files={{"file": ("8k.mp4", open({clip!r}, "rb").read(), "video/mp4")}})
    seconds = time.perf_counter() - started
print(json.dumps({{"status": answer.status_code, "seconds": round(seconds, 2),
                  "detail": answer.json().get("detail") if answer.status_code != 200 else None,
                  "peak_rss_mb": peak_rss_mb()}}))
"""


def child(code: str, limit: float = 600) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=limit, cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_rss(run: Path, clip_1080: Path, clip_8k: Path) -> dict:
    common = {"root": str(ROOT), "bench": str(ROOT / "bench"), "run": str(run)}
    out = {
        "predict_1080p_3s_old": child(RSS_CHILD.format(**common, clip=str(clip_1080), old=True)),
        "predict_1080p_3s_new": child(RSS_CHILD.format(**common, clip=str(clip_1080), old=False)),
        "predict_8k_new": child(RSS_CHILD.format(**common, clip=str(clip_8k), old=False)),
        "serve_8k_default_budget": child(SERVE_CHILD.format(**common, clip=str(clip_8k), pixels=3840 * 2160)),
        "serve_8k_no_budget": child(SERVE_CHILD.format(**common, clip=str(clip_8k), pixels=0)),
    }
    for name, figures in out.items():
        print(f"rss {name}: {figures}", file=sys.stderr)
    return out


SERVER_CHILD = """
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import dfer.predict.ensemble as ensemble
from dfer.serve import DEFAULT_WORKERS, MAX_VIDEO_PIXELS
from dfer.cli.serve import serve
if {old!r}:  # the run detecting and decoding as before issue 21, on one worker (the default then)
    from faces import as_old
    load = ensemble.load_model
    def load_old(*args):
        predictor = load(*args)
        as_old(predictor)
        return predictor
    ensemble.load_model = load_old
serve(model=[{run!r}], weights=None, host="127.0.0.1", port={port}, max_upload_mb=50.0,
      workers=1 if {old!r} else DEFAULT_WORKERS, queue={queue}, max_timeline_seconds=120.0,
      max_video_pixels=MAX_VIDEO_PIXELS, device="cpu")
"""


def bench_serve(run: Path, seconds: float) -> dict:
    """bench/serve_load.py at 1 and 4 clients against `dfer serve` (its command, in a process of its own) on the lite
    run: new, with its defaults, and old: the Predictor detecting and decoding as before issue 21 (`as_old`) on one
    worker, the default then."""
    out = {}
    for label in ("old", "new"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code = SERVER_CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), run=str(run), old=label == "old",
                                   queue=4, port=port)
        log = tempfile.TemporaryFile()
        server = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            for clients in (1, 4):
                done = subprocess.run([sys.executable, str(ROOT / "bench" / "serve_load.py"),
                                       "--url", f"http://127.0.0.1:{port}", "--clients", str(clients),
                                       "--seconds", str(seconds)], capture_output=True, text=True, cwd=ROOT,
                                      timeout=900)
                lines = done.stdout.strip().splitlines()
                if not (lines and lines[-1].startswith("{")):
                    log.seek(0)
                    figures = {"error": done.stderr[-2000:] + log.read().decode(errors="replace")[-2000:]}
                else:
                    figures = json.loads(lines[-1])
                keep = ("throughput_rps", "p50_ms", "p95_ms", "errors", "requests", "server_predict_ms_mean")
                out[f"{label}_{clients}_clients"] = {k: v for k, v in figures.items() if k in keep or k == "error"}
                print(f"serve {label} {clients} clients: {out[f'{label}_{clients}_clients']}", file=sys.stderr)
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    for clients in (1, 4):
        old, new = out[f"old_{clients}_clients"], out[f"new_{clients}_clients"]
        if "throughput_rps" in old and "throughput_rps" in new:
            out[f"speedup_{clients}_clients"] = round(new["throughput_rps"] / old["throughput_rps"], 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-seconds", type=float, default=15, help="per serve load test (0: skip them)")
    parser.add_argument("--work", type=Path, help="folder for the runs and clips (default: a temporary one)")
    args = parser.parse_args(argv)
    from machine import machine_busy_s

    work = args.work or Path(tempfile.mkdtemp(prefix="dfer-bench-faces-"))
    work.mkdir(parents=True, exist_ok=True)
    wait_for_quiet()
    busy, started = machine_busy_s(), time.perf_counter()
    own = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)

    figures: dict = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                              cwd=ROOT).stdout.strip(), "device": "cpu", "cores": os.cpu_count(),
                     "clips": "../shared/data" if (SHARED / "cremad").exists() else "samples/cremad"}
    figures["detection"] = bench_detection()
    clip_1080 = write_face_clip(work / "face-1080p-3s.mp4", 3.0, (1920, 1080))
    clip_8k = write_8k(work / "grey-8k-4s.mp4")
    runs = {preset: make_run(work, preset) for preset in ("lite", "tiny")}
    figures["extract"] = {"tiny_new_clips_per_s": round(extraction_clips_per_s(work / "store-tiny-new", "tiny"), 2),
                          "tiny_old_clips_per_s": round(extraction_old(work), 2),
                          "lite_new_clips_per_s": round(extraction_clips_per_s(work / "store-lite-new", "lite"), 2)}
    figures["extract"]["tiny_speedup"] = round(figures["extract"]["tiny_new_clips_per_s"]
                                               / figures["extract"]["tiny_old_clips_per_s"], 2)
    figures["predict_3s_1080p"] = {preset: bench_predict(runs[preset], clip_1080) for preset in ("lite", "tiny")}
    for preset, result in figures["predict_3s_1080p"].items():
        print(f"predict {preset}: {result}", file=sys.stderr)
    figures["rss"] = bench_rss(runs["lite"], clip_1080, clip_8k)
    if args.serve_seconds > 0:
        figures["serve"] = bench_serve(runs["lite"], args.serve_seconds)

    elapsed = time.perf_counter() - started
    mine = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
    mine -= sum(r.ru_utime + r.ru_stime for r in own)
    figures["wall_s"] = round(elapsed, 1)
    figures["other_load_cores"] = round(max(0.0, (machine_busy_s() - busy - mine) / elapsed), 2)
    d, p = figures["detection"], figures["predict_3s_1080p"]
    figures["goals"] = {
        "detection_speedup_ge_5": d["real_speedup"] >= 5, "detection_speedup": d["real_speedup"],
        "every_box_iou_ge_0.9": d["real_min_iou"] >= 0.9, "face_found_identical": d["real_face_found_identical"],
        "small_face_found": d["small_face_found"], "two_faces_found": d["two_faces_found"],
        "predict_3s_speedup_ge_3": {k: v["speedup"] >= 3 for k, v in p.items()},
        "predict_8k_peak_rss_le_2gb": figures["rss"]["predict_8k_new"].get("peak_rss_mb", 1e9) <= 2048,
        "serve_8k_peak_rss_le_2gb": figures["rss"]["serve_8k_no_budget"].get("peak_rss_mb", 1e9) <= 2048,
        "serve_4_clients_speedup_ge_3": figures.get("serve", {}).get("speedup_4_clients", 0) >= 3,
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
