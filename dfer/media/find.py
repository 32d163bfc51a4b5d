"""Which files a command that reads media takes from its arguments: files named, and media files found in folders.

Light on purpose (no decoding library is imported), so `dfer.checks` can look before any model loads.
"""

from __future__ import annotations

from pathlib import Path

# What `dfer predict FOLDER` picks up (and AUDIO_SUFFIXES for a run that hears); a file named explicitly is always
# tried, whatever its suffix.
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".flv", ".avi", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts"}
# Audio-only files (a manifest's, a predict folder's).
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"}
# Photos, each read as a one-frame clip (`dfer.media.still`); a dataset's folder of frames is one clip, read by its
# adapter (`dfer.media.frames`), never through here.
STILL_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES | STILL_SUFFIXES


def find_media(paths: list[Path], suffixes: set[str] = VIDEO_SUFFIXES) -> tuple[list[Path], list[dict]]:
    """Files named, and files with one of `suffixes` found recursively in folders named, in order; plus error records
    ({"path", "error"}) for paths that do not exist or folders without any such file."""
    files, errors = [], []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            files.extend(found)
            if not found:
                kinds = [name for name, kind in (("video", VIDEO_SUFFIXES), ("audio", AUDIO_SUFFIXES),
                                                 ("image", STILL_SUFFIXES)) if suffixes & kind]
                kind = " or ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds)
                errors.append({"path": str(path), "error": f"no {kind} files ({', '.join(sorted(suffixes))})"})
        elif path.exists():
            files.append(path)
        else:
            errors.append({"path": str(path), "error": "file not found"})
    return files, errors
