"""Face actions (`dfer.encoders.face_actions`): what reading them adds to a clip's prediction on this CPU, and the
docs' picture of a clip's blendshapes over time.

    python bench/face_actions.py                                    # the six bundled clips, 16 frames each
    python bench/face_actions.py --frames 16 --plot docs/face-actions.png

Each bundled CREMA-D clip (about 2 s, 480 x 360) is decoded and its face tracked as `dfer predict` does; then the
landmarker reads the followed face on its sampled frames, with the models loaded (its first call, which builds the
landmarker, is left out). The figure is the seconds that reading adds to one clip, which is all `--actions` adds to
a window. `--plot` draws the happy clip's strongest blendshapes over time. The last line of stdout is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dfer.encoders.face_actions import BLENDSHAPES, FaceActionReader  # noqa: E402
from dfer.faces import FaceCropper  # noqa: E402
from dfer.media.decode import decode_clip  # noqa: E402

SAMPLES = ROOT / "samples" / "cremad" / "VideoFlash"


def plot(path: Path, times: np.ndarray, blendshapes: np.ndarray, title: str, shown: int = 6) -> None:
    """The `shown` blendshapes that move most (largest range) over time, on a bare Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = np.argsort(np.nanmax(blendshapes, 0) - np.nanmin(blendshapes, 0))[::-1][:shown]  # (shown,)
    fig = Figure(figsize=(8, 3.2))
    FigureCanvasAgg(fig)
    axis = fig.subplots()
    for k in order:
        axis.plot(times, blendshapes[:, k], marker=".", label=BLENDSHAPES[k])
    axis.set_ylim(0, 1)
    axis.set_xlabel("seconds")
    axis.set_ylabel("blendshape")
    axis.set_title(title)
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="frames sampled per clip")
    parser.add_argument("--plot", type=Path, help="write the happy clip's blendshape timeline here")
    args = parser.parse_args()
    reader, cropper = FaceActionReader(), FaceCropper(112, 0.05)
    clips = sorted(SAMPLES.glob("*.flv"))
    seconds, found = [], []
    reader.landmarker()  # built before timing, as a loaded model has it
    for path in clips:
        decoded = decode_clip(path, None, args.frames)
        boxes = cropper(decoded.frames).face_box()
        started = time.perf_counter()
        actions = reader(decoded.frames, boxes)
        seconds.append(time.perf_counter() - started)
        found.append(float(actions.found.mean()))
        print(f"{path.name}: {seconds[-1]:.3f} s for {args.frames} frames, face read in {found[-1]:.0%}")
        if args.plot is not None and "_HAP_" in path.name:
            plot(args.plot, decoded.frame_time, actions.blendshapes, f"{path.name}: the blendshapes that move most")
    print(json.dumps({"frames": args.frames, "clips": len(clips), "seconds_per_clip": round(float(np.mean(seconds)), 3),
                      "ms_per_frame": round(1000 * float(np.mean(seconds)) / args.frames, 1),
                      "face_read": round(float(np.mean(found)), 3), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
