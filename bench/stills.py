"""Photos (`dfer.media.still`): the seconds of face detection a still image takes with the models loaded, now and
the way a photo used to be read (PyAV, its one picture decoded as T separate frames, each searched).

    python bench/stills.py                      # the 8 real AV clips of ../shared/data (else the 6 bundled clips)
    python bench/stills.py --repeats 5 --model face

There is no set of posed stills here, so the stills are made from the real clips: per clip, its frame at the centre
saved at its own size as PNG and as JPEG (quality 95), the JPEG upscaled (bicubic) to a shorter side of 2000 pixels
(a 6-megapixel photo's size), and the JPEG stored turned a quarter left with the EXIF orientation that turns it back.
Each still goes through the run's `decode` (what `dfer predict` and `dfer serve` call) and its `face_track`
(detection, tracking and crops: the `faces` seconds of a prediction), `--repeats` times, the least kept (on a shared
machine, the run other processes slowed least); the first still is read once before timing, so every model and thread
pool is warm. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dfer.media.decode import decode_clip  # noqa: E402
from dfer.media.still import decode_still  # noqa: E402
from dfer.predict.predictor import Predictor  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "samples" / "cremad" / "VideoFlash"
LARGE_SHORT_SIDE = 2000
EXIF_ORIENTATION, TURNED_LEFT = 0x0112, 6


def clips(data: Path) -> list[Path]:
    """The real AV clips of `data` (CREMA-D's and RAVDESS's), else the bundled ones."""
    found = sorted((data / "cremad" / "VideoFlash").glob("*.flv")) + sorted((data / "ravdess_av").glob("*/*.mp4"))
    return found or sorted(SAMPLES.glob("*.flv"))


def make_stills(clip: Path, folder: Path) -> dict[str, Path]:
    """The clip's centre frame as the four stills the module docstring lists: kind -> file."""
    picture = Image.fromarray(decode_clip(clip, None, frames=1).frames[0])  # (H, W, 3) at the file's own size
    paths = {kind: folder / f"{clip.stem}-{kind}.{suffix}"
             for kind, suffix in (("png", "png"), ("jpeg", "jpg"), ("large", "jpg"), ("exif", "jpg"))}
    picture.save(paths["png"])
    picture.save(paths["jpeg"], quality=95)
    scale = LARGE_SHORT_SIDE / min(picture.size)
    picture.resize((round(picture.width * scale), round(picture.height * scale)),
                   Image.Resampling.BICUBIC).save(paths["large"], quality=95)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = TURNED_LEFT
    picture.transpose(Image.Transpose.ROTATE_90).save(paths["exif"], quality=95, exif=exif)
    return paths


def timed(predictor: Predictor, path: Path, old: bool) -> tuple[float, float, float]:
    """(decode seconds, face seconds, share of frames with the face found) of one still, read now or as before."""
    started = time.perf_counter()
    if old:  # what `decode` did before photos were photos: PyAV, T separate copies of the picture
        decoded = decode_clip(path, None, predictor.frames, max_seconds=predictor.max_seconds,
                              max_short_side=predictor.frame_short_side)
    else:
        decoded, _ = predictor.decode(path)
    decoded_at = time.perf_counter()
    track = predictor.face_track(path, decoded)
    return decoded_at - started, time.perf_counter() - decoded_at, float(track.face_found.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the real data folder (its AV clips)")
    parser.add_argument("--model", default="face", help="the run or bundled model whose decoding and faces are used")
    parser.add_argument("--repeats", type=int, default=3, help="timings per still; the least is kept")
    parser.add_argument("--no-old", action="store_true", help="skip the old way of reading a photo")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = Predictor(args.model)
    sources = clips(args.data)
    rows: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        stills = [(kind, path) for clip in sources for kind, path in make_stills(clip, Path(folder)).items()]
        timed(predictor, stills[0][1], old=False)  # warm: models, thread pools, allocator
        timed(predictor, stills[0][1], old=True)
        for kind, path in stills:
            for way in ("now",) if args.no_old else ("now", "old"):
                runs = [timed(predictor, path, way == "old") for _ in range(args.repeats)]
                decode, faces = (min(run[i] for run in runs) for i in (0, 1))
                row = rows.setdefault(f"{kind} {way}", {"decode": [], "faces": [], "found": []})
                row["decode"].append(decode), row["faces"].append(faces), row["found"].append(runs[0][2])
                shape = decode_still(path, 1, predictor.frame_short_side).frames.shape[1:3]
                print(f"{path.name:40s} {way:3s} decoded to {shape[1]}x{shape[0]}: decode {decode:.3f} s, "
                      f"faces {faces:.3f} s, face found {runs[0][2]:.0%}")
    summary = {name: {"stills": len(row["faces"]), "faces_mean_s": round(float(np.mean(row["faces"])), 4),
                      "faces_median_s": round(float(np.median(row["faces"])), 4),
                      "faces_max_s": round(float(np.max(row["faces"])), 4),
                      "decode_mean_s": round(float(np.mean(row["decode"])), 4),
                      "face_found": round(float(np.mean(row["found"])), 3)} for name, row in rows.items()}
    print(f"\n{'still':12s} {'n':>3s} {'faces mean':>11s} {'median':>7s} {'max':>6s} {'decode mean':>12s} "
          f"{'found':>6s}")
    for name, s in summary.items():
        print(f"{name:12s} {s['stills']:3d} {s['faces_mean_s']:10.3f}s {s['faces_median_s']:6.3f}s "
              f"{s['faces_max_s']:5.3f}s {s['decode_mean_s']:11.3f}s {s['face_found']:6.0%}")
    now = [v for name, row in rows.items() if name.endswith("now") for v in row["faces"]]
    print(json.dumps({"model": args.model, "clips": len(sources), "repeats": args.repeats, "frames": predictor.frames,
                      "frame_short_side": predictor.frame_short_side, "threads": torch.get_num_threads(),
                      "faces_mean_s": round(float(np.mean(now)), 4), "faces_median_s": round(float(np.median(now)), 4),
                      "faces_max_s": round(float(np.max(now)), 4), "kinds": summary, "cpus": os.cpu_count(),
                      "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
