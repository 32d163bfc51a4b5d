"""`dfer predict --timeline` on long files: seconds of video analysed per wall second on CPU, and peak RSS.

    python bench/timeline.py                                   # runs/demo (make demo); 1- and 10-minute files
    python bench/timeline.py --minutes 1 10 --limit 600 --model RUN

The files are the six bundled CREMA-D clips played in a row, each repeated until the file is about `--minutes`
long (`dfer.testing.synth.write_concatenation`: real faces and speech, 480 x 360 at 25 fps, 16 kHz AAC). Each file
is analysed in a fresh process (`FileTimeline`, the code `dfer predict --timeline` runs, default window and hop),
so its `ru_maxrss` is the analysis' own peak. `--limit` stops an analysis after that many wall seconds: the figures
are then over the part analysed (`video_s` of `duration_s`), which is still a fair test of flat memory, since the
reader's state does not depend on how far into the file it is. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BLOCK_SECONDS = 12.64  # the six sample clips once each, at 25 fps


def measure(model: Path, path: Path, limit: float) -> dict:
    """Analyse `path` (in this process) until it ends or `limit` wall seconds pass."""
    from dfer.media.probe import stated_duration
    from dfer.predict.predictor import Predictor
    from dfer.predict.timeline import HOP_FRACTION, FileTimeline, default_window

    predictor = Predictor(model)
    window, _ = default_window(predictor.config)
    end, windows = 0.0, 0
    started = time.perf_counter()
    for row in FileTimeline(predictor, path, window, window * HOP_FRACTION):
        end, windows = row["end"], windows + 1
        if time.perf_counter() - started > limit:
            break
    wall = time.perf_counter() - started
    return {"file": path.name, "duration_s": round(stated_duration(path), 2), "video_s": round(end, 2),
            "windows": windows, "wall_s": round(wall, 1), "video_s_per_s": round(end / wall, 3), "window_s": window,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--limit", type=float, default=900, help="wall seconds per file at most")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # measure this file in this process
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.model, args.child, args.limit)))
        return {}
    from dfer.testing.sample import SAMPLE
    from dfer.testing.synth import write_concatenation

    clips = sorted((SAMPLE / "VideoFlash").glob("*.flv"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            path = Path(tmp) / f"long-{minutes:g}min.mp4"
            write_concatenation(path, clips, repeat=math.ceil(minutes * 60 / BLOCK_SECONDS))
            out = subprocess.run([sys.executable, __file__, "--child", str(path), "--model", str(args.model),
                                  "--limit", str(args.limit)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{path.name}: the measuring process failed:\n{out.stderr}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(f"{r['file']:18} analysed {r['video_s']:7.1f} of {r['duration_s']:7.1f} s in {r['wall_s']:7.1f} s: "
                  f"{r['video_s_per_s']:.3f} video s/s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    summary = {"model": str(args.model), "limit_s": args.limit, "files": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
