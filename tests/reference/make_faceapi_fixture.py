"""Build tests/data/faceapi_tfjs.npz: real face crops and face-api.js FaceExpressionNet outputs from TF.js.

For each of the 6 CREMA-D clips and the 2 RAVDESS clips in ../shared/data, decode a few frames with dfer's own
decoder, crop the face with dfer's FaceCropper (112 px, margin 0.05) and keep one crop per clip (the frame the
detector is surest of). Run the TF.js reference (tests/reference/faceapi_tfjs/reference.mjs, after `npm ci` in that
folder) on the crops and store:

  crops   (n, 112, 112, 3) uint8 RGB
  probs   (n, 7) float32       face-api's own FaceExpressionNet softmax
  grid    (n, 7, 7, 256) float32  NHWC feature map after dense3 (before avgPool), proven by reference.mjs to give
          `probs` through mean -> fc -> softmax
  labels  (7,) the class names, face-api's order
  clips   (n,) the clip ids
  source  a string: versions, clips, how it was made

    .venv/bin/python tests/reference/make_faceapi_fixture.py [--shared ../shared/data] [--out tests/data/faceapi_tfjs.npz]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from dfer.faces import FaceCropper
from dfer.media.decode import decode_clip

ROOT = Path(__file__).resolve().parents[2]
REF_DIR = Path(__file__).resolve().parent / "faceapi_tfjs"
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]
CLIPS = [
    "cremad/VideoFlash/1001_DFA_ANG_XX.flv",
    "cremad/VideoFlash/1001_DFA_DIS_XX.flv",
    "cremad/VideoFlash/1001_DFA_FEA_XX.flv",
    "cremad/VideoFlash/1001_DFA_HAP_XX.flv",
    "cremad/VideoFlash/1001_DFA_NEU_XX.flv",
    "cremad/VideoFlash/1001_DFA_SAD_XX.flv",
    "ravdess_av/Actor_01/01-01-07-02-02-01-01.mp4",
    "ravdess_av/Actor_19/02-01-08-02-01-01-19.mp4",
]
FRAMES = 4  # frames decoded per clip (uniform over the clip); the crop kept is the surest detection among them


def crop_clip(cropper: FaceCropper, video: Path) -> tuple[np.ndarray, int, float]:
    clip = decode_clip(video, None, FRAMES, 16000, 16.0)
    track = cropper(clip.frames)
    if not track.face_found.any():
        raise RuntimeError(f"{video}: no face found in {FRAMES} frames")
    prob = np.where(track.face_found, track.detect_prob, -1.0)
    t = int(np.argmax(prob))
    return np.ascontiguousarray(track.faces[t].transpose(1, 2, 0)), t, float(prob[t])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "faceapi_tfjs.npz")
    parser.add_argument("--node", default="node")
    args = parser.parse_args()
    if not (REF_DIR / "node_modules" / "@vladmandic" / "face-api").is_dir():
        sys.exit(f"run `npm ci` in {REF_DIR} first")

    cropper = FaceCropper(image_size=112, margin=0.05)
    crops, clips = [], []
    for rel in CLIPS:
        crop, t, p = crop_clip(cropper, args.shared / rel)
        crops.append(crop)
        clips.append(Path(rel).stem)
        print(f"{rel}: frame {t} of {FRAMES}, detector p={p:.4f}")
    crops = np.stack(crops)

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "crops.npy", crops)
        subprocess.run([args.node, "reference.mjs", str(Path(tmp) / "crops.npy"), tmp], cwd=REF_DIR, check=True)
        probs = np.load(Path(tmp) / "probs.npy")
        grid = np.load(Path(tmp) / "grid.npy")
        result = json.loads((Path(tmp) / "result.json").read_text())
    assert result["labels"] == LABELS, result["labels"]
    assert probs.shape == (len(crops), 7) and grid.shape == (len(crops), 7, 7, 256)

    source = (
        f"face-api.js FaceExpressionNet via @vladmandic/face-api {result['faceapi_version']} "
        f"({result['faceapi_bundle']}, model/face_expression_model.bin) on @tensorflow/tfjs {result['tfjs_version']} "
        f"({result['backend']} backend), Node {result['node_version']}; "
        f"probs: face-api's own forward; grid: dense3 output recomputed with TF.js ops over the loaded params, "
        f"max |softmax(fc(mean(grid))) - probs| = {result['max_abs_diff_probs']:.3g}. "
        f"crops: dfer decode_clip({FRAMES} frames) + FaceCropper(image_size=112, margin=0.05), surest frame per clip; "
        f"clips: {', '.join(CLIPS)}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        crops=crops,
        probs=probs.astype(np.float32),
        grid=grid.astype(np.float32),
        labels=np.array(LABELS),
        clips=np.array(clips),
        source=np.array(source),
    )
    print(source)
    for clip, p in zip(clips, probs):
        print(f"{clip}: {LABELS[int(np.argmax(p))]} {p.max():.3f}")
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
