"""What a media file holds, read from its header without decoding it: its streams, the video's frame size, its
duration; and opening it for decoding. Bad input raises `ClipError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import av

from dfer.media.clip_error import ClipError, as_clip_error, error_reason


def check_file(path: Path) -> None:
    if not path.exists():
        raise ClipError(path, "file not found")
    if not path.is_file():
        raise ClipError(path, "not a file")
    if path.stat().st_size == 0:
        raise ClipError(path, "empty file (0 bytes)")


def open_media(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise ClipError(path, f"not a decodable media file ({error_reason(e)})") from e


def moving_pictures(container: av.container.InputContainer) -> list[av.VideoStream]:
    """The container's video streams; cover art in audio files shows up as a one-picture video stream: not a video."""
    return [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]


def video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    streams = moving_pictures(container)
    if not streams:
        raise ClipError(path, "no video stream")
    return streams[0]


def frame_pixels(path: Path) -> tuple[int, int]:
    """(width, height) of the file's video stream, from its header (nothing decoded); ClipError without one."""
    container = open_media(path)
    try:
        context = video_stream(container, path).codec_context
        return context.width, context.height
    finally:
        container.close()


def media_streams(path: Path) -> tuple[bool, bool]:
    """(has video, has audio), from the file's header (nothing decoded); ClipError for a file that is missing, empty,
    not a media file, or holds neither."""
    with as_clip_error(path):
        check_file(path)
        container = open_media(path)
        try:
            video, audio = bool(moving_pictures(container)), bool(container.streams.audio)
        finally:
            container.close()
    if not (video or audio):
        raise ClipError(path, "no video or audio stream")
    return video, audio


def is_audio_only(path: Path) -> bool:
    """The file holds sound and no video (a voice recording, whatever its suffix): read as an audio-only clip."""
    video, audio = media_streams(path)
    return audio and not video


def stated_duration(path: Path) -> float:
    """Duration from the container header, else from the packets' timestamps (browser WebM recordings state none)."""
    container = open_media(path)
    try:
        if container.duration is not None and container.duration > 0:
            return container.duration / av.time_base
        origin = (container.start_time or 0) / av.time_base
        end = 0.0
        try:
            for packet in container.demux():
                if packet.pts is not None:
                    end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin)
        except av.error.FFmpegError as e:
            if end == 0.0:
                raise ClipError(path, f"not a decodable media file ({error_reason(e)})") from e
    finally:
        container.close()
    if end <= 0:
        raise ClipError(path, "no timestamped media")
    return end
