"""Stage 1, faces: MTCNN detection, face tracks (the largest or the speaker's), square crops, landmarks in crop pixels."""

from dfer.faces.cropper import FACE_TRACKS, FaceCropper, FaceTrack, whole_frame_track
from dfer.faces.track import FaceTrace

__all__ = ["FACE_TRACKS", "FaceCropper", "FaceTrace", "FaceTrack", "whole_frame_track"]
