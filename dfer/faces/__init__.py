"""Stage 1, faces: MTCNN detection, one smoothed face track per clip, square crops with landmarks in crop pixels."""

from dfer.faces.crop import FaceCropper, FaceTrack

__all__ = ["FaceCropper", "FaceTrack"]
