"""What an input is, before anything is decoded: a photo, a video, an animation or a live stream, and its name.

Light on purpose: ``fer predict`` sorts its inputs with it and imports the video pipeline only for videos."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fercli.faces.images import IMAGE_SUFFIXES, STDIN, is_animated, is_image_path, not_a_photo
from fercli.faces.urls import PLAYLIST_SUFFIXES, is_stream, is_url, served_kind, url_stem, url_suffix

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".asf", ".flv", ".vob",
                  ".3gp", ".3g2",  # older phones' and messaging apps' videos
                  ".ts", ".mts", ".m2ts"}  # MPEG transport streams: camcorders (AVCHD), recorded broadcasts
# FFmpeg's own error lines (a refused connection, a damaged packet) would reach stderr next to fer's one line about the
# same failure: quiet, unless the user sets a level to debug with. OpenCV reads it once, when it first opens a video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass(frozen=True)
class Sampling:
    fps: float = 0.0  # frames per second to analyse; 0: every frame (or every ``every``-th)
    every: int = 1



def is_video_path(path) -> bool:
    return str(path).lower().endswith(tuple(VIDEO_SUFFIXES))



def is_clip(path: str) -> bool:
    """What goes through the video pipeline: a video by its name, an animated GIF, WebP or PNG, or a file with an
    unfamiliar name (a camcorder's .MOD, a download without its suffix) that is no image but OpenCV's FFmpeg decodes."""
    if is_video_path(path):
        return True
    if path == STDIN:  # a photo piped in (FFmpeg would read "-" as its own stdin)
        return False
    if is_url(path):  # a photo is downloaded; a video or a stream is read by FFmpeg
        return url_kind(path) != "photo"
    if not Path(path).is_file():  # a pipe or a device: never opened here (a read could block); read_photo says why
        return False
    animated = is_animated(Path(path))
    if animated is not None:
        return animated
    if is_image_path(Path(path)) or not_a_photo(path, _first_bytes(path)):  # FFmpeg would read a zip's JPEGs as frames
        return False
    return _opencv_reads_a_frame(path)



def _first_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError:
        return b""



def _opencv_reads_a_frame(path: str) -> bool:
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a file that is no video is not an error yet
    capture = cv2.VideoCapture(path)
    try:
        return capture.isOpened() and capture.read()[0]
    finally:
        capture.release()



def url_kind(url: str) -> str:
    """What an address is read as: "stream" (live, like a camera), "video" or "photo"; by its scheme, then its suffix,
    else by what the server says it sends (a camera's MJPEG stream seldom has a suffix)."""
    if is_stream(url):
        return "stream"
    suffix = url_suffix(url)
    if suffix in VIDEO_SUFFIXES | PLAYLIST_SUFFIXES:
        return "video"
    return "photo" if suffix in IMAGE_SUFFIXES else served_kind(url)



def is_live(source: str | int) -> bool:
    """A camera or a live stream: frames stamped by the clock, the newest frame analysed, Ctrl-C ends it normally."""
    return isinstance(source, int) or (is_url(source) and url_kind(source) == "stream")



def media_name(source: str | int) -> str:
    """What a run folder or an annotated file is named after: a file's stem, an address's last part, "camera",
    "stdin"."""
    if isinstance(source, int):
        return "camera"
    if source == STDIN:
        return "stdin"
    return url_stem(source) if is_url(source) else Path(source).stem



def cannot_open(source: str | int) -> str:
    if isinstance(source, int):
        return f"camera {source}: cannot be opened (is a camera connected, and is {source} its number?)"
    if is_url(source):
        return f"{source}: cannot be opened as a video stream (is the address right and the server up?)"
    return f"{source}: cannot be opened as a video (is it a video file OpenCV's FFmpeg reads?)"
