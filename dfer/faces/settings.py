"""What a store records about faces: how they were searched for, and how large the frames they were cut from were.

Both change the boxes and crops, so both are in the store's fingerprint, and a run rebuilds them from it
(`FaceSettings.of`, read by `dfer.store.fingerprint.Fingerprint`). Stores made before faces were sized to the face
record neither: they read as the full MTCNN pyramid on frames decoded at full size (`LEGACY_FACES`), and their
fingerprint stays exactly what it was, so they still open, resume and evaluate.

Why frames are decoded to a shorter side of at most FRAME_SHORT_SIDE (720) pixels: a frame is only held to be
cropped, and the largest crop any encoder takes is 224 pixels (SigLIP2 at base and large) of a square 1.5 x the
face (25 % margin a side; faceapi's crop is 112 pixels of 1.1 x the face). A crop keeps all the resolution its
encoder can use as long as the face is at least 224 / 1.5 = 150 pixels in the decoded frame, which at 720 holds for
any face of 21 % of the frame's height or more: the close-ups of emotion datasets (CREMA-D's face is 26 % of its
360-pixel frames, RAVDESS's 30-50 %) and a webcam's. A 720-pixel frame is 2.7 MB, so T = 16 of them are 44 MB, where
16 frames of 8K video are 1.6 GB. Every file of the sample datasets is at most 720 pixels high, so nothing they give
changes; a smaller face in a larger video (a wide shot in 4K) loses resolution it would have had, and detection,
which reads 360-pixel frames, loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfer.faces.detect import LEGACY_DETECT, DetectSettings

FRAME_SHORT_SIDE = 720


@dataclass(frozen=True)
class FaceSettings:
    detect: DetectSettings = field(default_factory=DetectSettings)
    frame_short_side: int | None = FRAME_SHORT_SIDE  # frames are decoded to at most this shorter side; None: as stored

    @classmethod
    def named(cls, name: str) -> FaceSettings:
        """"large-first" or "full" (`dfer.faces.detect`) on frames decoded to FRAME_SHORT_SIDE, or "legacy": the full
        method on frames decoded at full size, what every store that records no face settings used."""
        if name not in FACE_DETECT_CHOICES:
            raise ValueError(f"face_detect {name!r} is not one of {', '.join(FACE_DETECT_CHOICES)}")
        return LEGACY_FACES if name == "legacy" else cls(DetectSettings(method=name))

    @property
    def name(self) -> str:
        """The `named` name of these settings (that of their detection method if they are not one of those)."""
        return "legacy" if self == LEGACY_FACES else self.detect.method

    @classmethod
    def of(cls, fingerprint: dict) -> FaceSettings:
        """The settings a store (or a run trained on one) was made with; LEGACY_FACES for a store that records none."""
        if "face_detect" not in fingerprint:
            return LEGACY_FACES
        return cls(DetectSettings.from_record(fingerprint["face_detect"]), fingerprint.get("frame_short_side"))

    def record(self) -> dict:
        """The fingerprint's fields: none for LEGACY_FACES, so such a store's fingerprint is what it always was."""
        if self == LEGACY_FACES:
            return {}
        return {"face_detect": self.detect.record(), "frame_short_side": self.frame_short_side}


LEGACY_FACES = FaceSettings(LEGACY_DETECT, None)
FACE_DETECT_CHOICES = ("large-first", "full", "legacy")
