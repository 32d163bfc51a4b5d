"""Face detection sized to the face (issue 21): the large-first method against the full pyramid it replaces, on
synthetic frames with real faces pasted in (a small one alone, two large ones) and on real clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dfer.faces import FaceCropper
from dfer.faces.area import AreaTable, fixed_point
from dfer.faces.detect import LEGACY_DETECT, DetectSettings, FaceDetector
from dfer.faces.settings import FRAME_SHORT_SIDE, LEGACY_FACES, FaceSettings
from dfer.media.decode import decode_clip

REPO = Path(__file__).resolve().parents[1]
CREMAD = REPO / "samples" / "cremad" / "VideoFlash"
SHARED = REPO.parent / "shared" / "data"
IOU = 0.9  # the stated tolerance; on the 8 real clips 126 of 128 boxes are identical, the others within 0.94


@pytest.fixture(scope="module")
def detectors() -> dict[str, FaceDetector]:
    return {"full": FaceDetector(settings=DetectSettings(method="full")), "large-first": FaceDetector()}


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    """A real head (CREMA-D actor 1001, face about 92 px high) on its green background: (240, 200, 3) uint8."""
    clips = sorted(CREMAD.glob("*.flv"))
    if not clips:
        pytest.skip(f"no CREMA-D samples in {CREMAD}")
    return decode_clip(clips[0], None, frames=1).frames[0][30:270, 120:320].copy()


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _scene(pastes: list[tuple[np.ndarray, int, int]], size=(360, 640), frames: int = 4) -> np.ndarray:
    """(T, H, W, 3) grey frames with each (image, x, y) pasted, drifting a pixel a frame."""
    out = np.full((frames, *size, 3), 128, np.uint8)
    for t in range(frames):
        for image, x, y in pastes:
            out[t, y + t : y + t + image.shape[0], x + t : x + t + image.shape[1]] = image
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assert_same_faces(found, reference, tolerance: float = IOU) -> None:
    """Frame by frame, the same number of faces, each within `tolerance` IoU of the reference's (same order)."""
    for t, (a, b) in enumerate(zip(found, reference)):
        assert len(a.boxes) == len(b.boxes), f"frame {t}: {len(a.boxes)} faces, not {len(b.boxes)}"
        for box, ref in zip(a.boxes, b.boxes):
            assert iou(box, ref) >= tolerance, f"frame {t}: IoU {iou(box, ref):.3f}"


def test_a_small_face_alone_is_still_found(detectors, head):
    small = _resized(head, 0.2)  # face about 18 px in a 360-pixel frame: too small for the first pass
    frames = _scene([(small, 300, 150)])
    full, fast = detectors["full"](frames), detectors["large-first"](frames)
    assert all(len(d.boxes) == 1 for d in full), "the full pyramid itself should find the small face"
    assert_same_faces(fast, full)
    side = fast[0].boxes[0, 2] - fast[0].boxes[0, 0]
    assert side < 360 / 16  # the passes find faces down to about half of their nominal 1/6 and 1/8
    assert detectors["large-first"].last_fallback_frames == len(frames)  # found by the full search


def test_a_face_of_a_thirteenth_of_the_frame_is_found_by_the_second_pass(detectors, head):
    """A face too small for the first pass (1/6, finding down to about 1/10) and large enough for the second (1/8,
    down to about 1/15): found on every frame without the full pyramid. Its box is near the full pyramid's, not on
    it: a face near the smallest a pass finds is placed from coarser levels than the full pyramid's finest (IoU 0.85
    to 1 for faces of 26 to 35 px)."""
    frames = _scene([(_resized(head, 0.3), 300, 150)])  # face about 28 px in a 360-pixel frame
    full, fast = detectors["full"](frames), detectors["large-first"](frames)
    assert all(len(d.boxes) == 1 for d in full)
    assert_same_faces(fast, full, tolerance=0.85)
    assert detectors["large-first"].last_fallback_frames == 0
    first_pass_only = FaceDetector(settings=DetectSettings(large_face=6))
    first_pass_only(frames)
    assert first_pass_only.last_fallback_frames > 0  # the first pass alone misses it (on 3 of the 4 frames)


def test_two_faces_are_both_found_in_one_pass(detectors, head):
    # faces of about 92 and 37 px: the smaller one about 1/10 of the frame, the smallest the first pass finds
    frames = _scene([(head, 40, 40), (_resized(head[:, ::-1].copy(), 0.4), 380, 120)])
    full, fast = detectors["full"](frames), detectors["large-first"](frames)
    assert all(len(d.boxes) == 2 for d in full)
    assert_same_faces(fast, full)
    assert detectors["large-first"].last_fallback_frames == 0


def test_clips_detected_together_find_what_each_finds_alone(head):
    """`detect_clips` (one call for a batch of clips on CUDA) groups neighbouring clips of one frame size up to
    `batch_frames` frames, and every clip gets the detections it gets alone."""

    class Counting(FaceDetector):
        def __call__(self, frames):
            self.calls.append(len(frames))
            return super().__call__(frames)

    detector = Counting(batch_frames=12)
    detector.calls = []
    clips = [_scene([(head, 40 + 60 * k, 40)]) for k in range(3)] + [_scene([(head, 40, 20)], size=(300, 500))]
    together = detector.detect_clips(clips)
    assert detector.calls == [12, 4]  # three 360 x 640 clips of 4 frames in one call, the 300 x 500 clip apart
    for clip, found in zip(clips, together):
        alone = detector(clip)
        assert len(found) == len(clip) and all(len(d.boxes) == 1 for d in found)
        assert_same_faces(found, alone, tolerance=0.999)


def test_no_face_gives_no_detection(detectors):
    frames = _scene([])
    assert all(len(d.boxes) == 0 for d in detectors["large-first"](frames))


def _real_clips() -> list[Path]:
    clips = sorted(CREMAD.glob("*.flv"))[:1] + sorted((SHARED / "ravdess_av").glob("*/*.mp4"))
    if not clips:
        pytest.skip("no real clips (samples/cremad, ../shared/data/ravdess_av)")
    return clips


def test_real_clips_keep_their_boxes_and_face_found():
    """A bundled CREMA-D clip and the two RAVDESS clips of ../shared/data (when present): every detection and every
    crop box of the default settings within the stated IoU of those of the settings before issue 21 (the full
    pyramid, frames shrunk bilinear), and face_found the same (bench/faces.py does all 8)."""
    found = {}
    croppers = {}
    for name, settings in (("before", LEGACY_DETECT), ("default", DetectSettings())):
        croppers[name] = FaceCropper(image_size=112, detect=settings)
        detect = croppers[name].detect
        croppers[name].detect = lambda frames, detect=detect, name=name: found.setdefault(name, detect(frames))
    for path in _real_clips():
        found.clear()
        frames = decode_clip(path, None, frames=8, max_short_side=FRAME_SHORT_SIDE).frames
        before, now = (croppers[name](frames) for name in ("before", "default"))
        np.testing.assert_array_equal(now.face_found, before.face_found, err_msg=path.name)
        assert min(iou(a, b) for a, b in zip(now.box, before.box)) >= IOU, path.name
        assert_same_faces(found["default"], found["before"])


def test_pnet_in_chunks_of_frames_gives_the_same_detections(monkeypatch):
    """PNet reads a level a few frames a call (`PNET_PIXELS`, bounding its activations' memory): one frame a call
    gives the detections of all the frames in one call, to float rounding (convolutions of another batch size may
    sum in another order)."""
    from dfer.faces import detect

    frames = decode_clip(_real_clips()[0], None, frames=4).frames
    full = FaceDetector(settings=DetectSettings(method="full"))
    whole = full(frames)
    monkeypatch.setattr(detect, "PNET_PIXELS", 1)
    for a, b in zip(full(frames), whole):
        np.testing.assert_allclose(a.boxes, b.boxes, rtol=0, atol=1e-3)
        np.testing.assert_allclose(a.points, b.points, rtol=0, atol=1e-3)


def test_the_full_method_is_facenet_pytorchs_detect():
    """The full method, with its faster crops and channels-last networks, gives facenet-pytorch's own boxes."""
    from facenet_pytorch import MTCNN

    frames = decode_clip(_real_clips()[0], None, frames=4).frames
    scale = 360 / min(frames.shape[1:3])
    x = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float(), scale_factor=scale, mode="bilinear",
                      antialias=True).permute(0, 2, 3, 1)
    boxes, probs, points = MTCNN(keep_all=True).detect(x, landmarks=True)
    ours = FaceDetector(settings=LEGACY_DETECT)(frames)
    for d, b, p, q in zip(ours, boxes, probs, points):
        keep = np.asarray(p, np.float32) >= 0.9
        np.testing.assert_allclose(d.boxes, np.asarray(b, np.float32)[keep] / scale, atol=0.05)
        np.testing.assert_allclose(d.points, np.asarray(q, np.float32)[keep] / scale, atol=0.05)


def test_the_vendored_networks_are_facenet_pytorchs():
    """dfer's PNet, RNet and ONet with the vendored weights give facenet-pytorch's own networks' outputs, bit for bit,
    and a tampered weights file is refused."""
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    from dfer.faces.mtcnn import load_mtcnn

    generator = torch.Generator().manual_seed(0)
    ours = load_mtcnn()
    for net, reference, size in zip(ours, (PNet(), RNet(), ONet()), (37, 24, 48)):
        x = torch.rand(3, 3, size, size, generator=generator) * 2 - 1  # (N, 3, s, s) normalised pixels
        with torch.no_grad():
            for a, b in zip(net(x), reference.eval()(x)):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_tampered_mtcnn_weights_are_refused(tmp_path, monkeypatch):
    from dfer.faces import mtcnn

    for name in mtcnn.SHIPPED_SHA256:
        (tmp_path / f"{name}.pt").write_bytes((mtcnn.WEIGHTS / f"{name}.pt").read_bytes()[:-1])
    monkeypatch.setattr(mtcnn, "WEIGHTS", tmp_path)
    with pytest.raises(ValueError, match="SHA-256 .* facenet-pytorch 2.6.0's pnet.pt"):
        mtcnn.load_mtcnn()


def test_the_area_table_resamples_as_adaptive_pooling_does():
    """MTCNN's pyramid levels and its RNet/ONet crops, read from the summed-area table, against PyTorch's pooling
    (what facenet-pytorch calls): whole images to small sizes (table lookups) and large ones (pooled), rectangles of
    any frame, and frames larger than the detection size shrunk as F.interpolate shrinks them. Whole grey levels come
    out to float32 rounding; fractions to the table's fixed point (half of 1/2^bits)."""
    generator = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (3, 37, 53, 3), generator=generator, dtype=torch.uint8)  # (T, H, W, C)
    fractional = torch.rand(3, 37, 53, 3, generator=generator) * 255
    top, left = torch.tensor([0, 3, 10, 20]), torch.tensor([0, 7, 2, 30])
    bottom, right = top + torch.tensor([37, 5, 27, 17]), left + torch.tensor([53, 31, 9, 23])
    which = torch.tensor([0, 2, 1, 2])
    for frames in (grey, fractional):
        images = frames.permute(0, 3, 1, 2).float()  # (T, C, H, W)
        table = AreaTable(frames.numpy(), 360, torch.device("cpu"))
        assert table.scale == 1.0 and table.shape == (3, 37, 53, 3) and table.bits == 8
        tolerance = {} if frames is grey else {"atol": 0.5 / 2**table.bits, "rtol": 0}
        torch.testing.assert_close(table.images(), images, **tolerance)
        for size in [(9, 13), (5, 7), (30, 40), (37, 53)]:  # the first two by lookups, the others pooled
            torch.testing.assert_close(table.resized(size), F.adaptive_avg_pool2d(images, size), **tolerance)
        crops = table.crops(top, bottom, left, right, which, 24)  # (4, 3, 24, 24): smaller and larger than 24 px
        for k in range(4):
            region = images[which[k], :, top[k]:bottom[k], left[k]:right[k]][None]
            torch.testing.assert_close(crops[k:k + 1], F.adaptive_avg_pool2d(region, 24), **tolerance)
    big = (torch.rand(2, 120, 180, 3, generator=generator) * 255).to(torch.uint8)
    planes = big.permute(0, 3, 1, 2).float()  # (T, C, H, W)
    bilinear = {size: F.interpolate(planes, scale_factor=size / 120, mode="bilinear", antialias=True)
                for size in (60, 40, 90)}
    expected = {  # (shrink, detection size) -> the frames the table should hold
        ("bilinear", 60): bilinear[60],
        ("area", 60): F.adaptive_avg_pool2d(planes, (60, 90)),  # by 2: the mean of each 2 x 2 block, in integers
        ("area", 40): F.adaptive_avg_pool2d(planes, (40, 60)),  # by 3: 9 does not divide 2^bits, pooled in float
        ("area", 90): bilinear[90],  # by 4/3: not a whole number, so bilinear
    }
    for (shrink, size), frames in expected.items():
        for given in (big.numpy(), planes.permute(0, 2, 3, 1).numpy()):  # whole grey levels, and floats
            shrunk = AreaTable(given, size, torch.device("cpu"), shrink)
            assert shrunk.scale == size / 120 and shrunk.shape == (2, size, size * 3 // 2, 3)
            tolerance = {"atol": 0.5 / 2**shrunk.bits, "rtol": 0}
            torch.testing.assert_close(shrunk.images(), frames, **tolerance)
            torch.testing.assert_close(shrunk.select([1]).resized((10, 15)),
                                       F.adaptive_avg_pool2d(frames[1:], (10, 15)), **tolerance)
    with pytest.raises(ValueError, match="bilinear"):
        AreaTable(big.numpy(), 60, torch.device("cpu"), "nearest")


def test_the_table_is_int32_while_its_sums_leave_room_for_fractions():
    """int32 with 5 fraction bits at the default 360 x 640; int64 once a frame's sum leaves fewer than 4 bits."""
    assert fixed_point(360, 640) == (torch.int32, 5) and fixed_point(37, 53) == (torch.int32, 8)
    assert fixed_point(1080, 1920) == (torch.int64, 8)
    frames = np.full((1, 1080, 1920, 3), 255, np.uint8)  # the largest sums an int64 table must hold exactly
    table = AreaTable(frames, 1080, torch.device("cpu"))
    assert table.table.dtype == torch.int64 and int(table.table[:, 0, -1, -1].max()) == 1080 * 1920 * 255 << 8
    torch.testing.assert_close(table.resized((27, 48)), torch.full((1, 3, 27, 48), 255.0))


def test_settings_round_trip_through_a_fingerprint():
    assert FaceSettings.of({}) == LEGACY_FACES and LEGACY_FACES.record() == {}  # a store made before issue 21
    assert LEGACY_FACES.detect == LEGACY_DETECT and LEGACY_FACES.frame_short_side is None
    new = FaceSettings()
    assert FaceSettings.of(new.record()) == new and new.name == "large-first"
    assert new.record() == {"face_detect": {"method": "large-first", "detect_size": 360, "min_face": 20,
                                            "large_face": [6, 8], "shrink": "area"},
                            "frame_short_side": FRAME_SHORT_SIDE}
    # what stores of a single first pass recorded, before `shrink` was: their frames were shrunk bilinear
    one_pass = {"face_detect": {"method": "large-first", "detect_size": 360, "min_face": 20, "large_face": 8},
                "frame_short_side": FRAME_SHORT_SIDE}
    old = FaceSettings.of(one_pass).detect
    assert old.large_face == (8,) and old.shrink == "bilinear" and FaceSettings.of(one_pass).record() == one_pass
    assert LEGACY_DETECT.shrink == "bilinear" and FaceSettings.named("full").detect.shrink == "area"
    full = FaceSettings.named("full")
    assert FaceSettings.of(full.record()) == full and "large_face" not in full.record()["face_detect"]
    assert FaceSettings.named("legacy") == LEGACY_FACES
    with pytest.raises(ValueError, match="large-first"):
        FaceSettings.named("fast")
