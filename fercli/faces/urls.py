"""Photos and videos by address: a photo is downloaded (bounded in size and time), a video or a camera's stream is
handed to OpenCV's FFmpeg, which reads http(s), RTSP and RTMP itself."""

from __future__ import annotations

import functools
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from fercli import __version__
from fercli.errors import InputError

WEB_SCHEMES = {"http", "https"}
STREAM_SCHEMES = {"rtsp", "rtsps", "rtmp", "rtmps", "srt"}  # live: IP cameras, doorbells, broadcasts
PLAYLIST_SUFFIXES = {".m3u8"}  # HLS, how web cameras and broadcasts stream over http (locally, .m3u8 is often music)
# Motion JPEG over http, one JPEG after another for as long as the connection lasts: what IP cameras and phones' webcam
# apps serve, usually at an address without a suffix (http://192.168.1.5:8080/video).
MJPEG_TYPE = "multipart/x-mixed-replace"
PLAYLIST_TYPES = {"application/vnd.apple.mpegurl", "application/x-mpegurl"}
WEB_PAGE_TYPES = {"text/html", "application/xhtml+xml"}
MAX_DOWNLOAD_BYTES = 100_000_000  # a photo; beyond this it is surely not one
TIMEOUT_S = 20.0  # to connect, and between received bytes


def is_url(text: str) -> bool:
    return urlsplit(str(text)).scheme.lower() in WEB_SCHEMES | STREAM_SCHEMES and "://" in str(text)


def is_stream(url: str) -> bool:
    """A live stream: stamped by the clock and ended by Ctrl-C, as a camera is."""
    return is_url(url) and urlsplit(url).scheme.lower() in STREAM_SCHEMES


@functools.lru_cache(maxsize=64)
def served_kind(url: str) -> str:
    """What an http(s) address whose name does not say serves, by the Content-Type of its answer (the body is not
    read): "stream" (MJPEG, live), "video", or "photo" for anything else, failures included (the download that follows
    says what went wrong in one line). Cached: asked once per address and run."""
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": f"fer/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            kind = response.headers.get_content_type()
    except (OSError, ValueError):  # urllib's errors are OSErrors
        return "photo"
    if kind == MJPEG_TYPE:
        return "stream"
    return "video" if kind.startswith("video/") or kind in PLAYLIST_TYPES else "photo"


def url_suffix(url: str) -> str:
    return PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()


def url_stem(url: str) -> str:
    """A name for the run folder or the annotated file: the path's last part, else the host."""
    parts = urlsplit(url)
    stem = PurePosixPath(unquote(parts.path)).stem
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem or parts.hostname or "stream")


def download(url: str) -> bytes:
    """The body at ``url``, at most MAX_DOWNLOAD_BYTES; InputError with one line for every way that can fail."""
    import urllib.error
    import urllib.request

    max_bytes = MAX_DOWNLOAD_BYTES
    request = urllib.request.Request(url, headers={"User-Agent": f"fer/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            kind = response.headers.get_content_type()
            if kind == MJPEG_TYPE:  # it would never end: refuse at once rather than at the size limit
                raise InputError(f"{url}: a live MJPEG stream (a camera), not a photo; fer predict reads it as a camera")
            if kind in WEB_PAGE_TYPES:  # an address copied from the browser's address bar: a page showing the photo
                raise InputError(f"{url}: a web page, not a photo or a video; open it, right-click the photo and copy "
                                 "its own address (Copy image address), or download the video and give fer the file")
            if kind.startswith("video/"):
                raise InputError(f"{url}: the server sends a video ({kind}) at an address without a video suffix; "
                                 "download it and give fer the file")
            length = int(response.headers.get("Content-Length") or 0)
            body = response.read(max_bytes + 1) if length <= max_bytes else b""
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: the server answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise InputError(f"{url}: cannot reach it ({exc.reason}); check the address and the connection") from None
    except TimeoutError:
        raise InputError(f"{url}: no answer within {TIMEOUT_S:.0f} s") from None
    except (OSError, ValueError) as exc:  # a connection cut midway, a malformed address
        raise InputError(f"{url}: download failed ({exc})") from None
    if max(length, len(body)) > max_bytes:
        raise InputError(f"{url}: over {max_bytes // 1_000_000} MB, too large for a photo; download it and give fer "
                         "the file")
    return body
