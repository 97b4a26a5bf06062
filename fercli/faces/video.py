"""Video files and cameras through the face pipeline: sampled frames, faces tracked across frames, smoothed labels.

Tracking is greedy box matching: each face in a frame continues the track whose last box overlaps it most
(intersection over union at least 0.3), largest overlaps first; a face matching no track starts a new
``face_id``; a track ends when unseen for ``MAX_GAP_S`` seconds and in the last ``MAX_MISSED`` analysed frames (the
second keeps tracks across sparse sampling: at ``--fps 0.5`` every face would otherwise get a new id each frame). Smoothing is an exponential moving average of
each track's probabilities with time constant ``smooth_s`` seconds (weight 1 - exp(-dt / smooth_s) for a
frame dt seconds after the previous one), so it means the same at any frame rate; raw values are kept.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fercli.errors import InputError
from fercli.faces.analyzer import Face, FaceAnalyzer
from fercli.faces.images import Photo, animation_frames, frame_durations, is_animated
from fercli.faces.media import Sampling, cannot_open, is_live
from fercli.faces.urls import is_url

MIN_IOU = 0.3
MAX_GAP_S = 1.0
MAX_MISSED = 1
URL_TIMEOUT_MS = 20_000


@dataclass
class Frame:
    index: int  # position in the source, from 0
    time_s: float
    bgr: np.ndarray | None  # as OpenCV decodes it; None in a result sent back by another process
    analyse: bool  # False: only decoded for the annotated video, not analysed


@dataclass
class TrackedFace:
    face_id: int
    face: Face  # box, detector score, landmarks; ``face.scores`` are the smoothed probabilities
    raw: dict[str, float]  # this frame's own probabilities


@dataclass
class FrameResult:
    frame: Frame
    faces: list[TrackedFace] = field(default_factory=list)
    too_small: list[int] = field(default_factory=list)  # sides (px) of the faces found under min_face, left out

    def to_json(self, path: str) -> dict:
        record = {"path": path, "frame": self.frame.index, "time_s": round(self.frame.time_s, 3),
                  "faces": [{"face_id": t.face_id, "box": list(t.face.box), "label": t.face.label, "scores": t.face.scores,
                             "raw_scores": t.raw, "detector_score": t.face.detector_score} for t in self.faces]}
        if self.too_small:
            record["faces_under_min_face"] = len(self.too_small)
        return record

    @classmethod
    def from_json(cls, record: dict, too_small: list[int] = ()) -> FrameResult:
        """An analysed frame back from its record (as another process sent it), without its pixels."""
        faces = [TrackedFace(f["face_id"], Face(tuple(f["box"]), detector_score=f["detector_score"], label=f["label"],
                                                scores=f["scores"]), f["raw_scores"]) for f in record["faces"]]
        return cls(Frame(record["frame"], record["time_s"], None, True), faces, list(too_small))


@dataclass
class VideoInfo:
    fps: float
    width: int
    height: int
    frames: int  # as the container claims; 0 when unknown (cameras, some streams)


def open_clip(source: str | int, sampling: Sampling = Sampling(), decode_all: bool = False, start: int = 0,
              stop: int | None = None):
    """The frame source for a camera, a video file or an animated image; ``start`` and ``stop``: a video file's frames
    from index ``start`` up to ``stop`` (a segment of it; indexes and times stay the file's own)."""
    if isinstance(source, str) and not is_url(source) and is_animated(Path(source)):
        return AnimationSource(source, sampling, decode_all)
    return VideoSource(source, sampling, decode_all, start=start, stop=stop)


def sampling_step(fps: float, sampling: Sampling) -> int:
    """Analyse every step-th frame."""
    return max(1, round(fps / sampling.fps)) if sampling.fps > 0 else max(1, sampling.every)


class VideoSource:
    """Frames from a file or a camera (an index such as 0), decoded on a background thread.

    From a file, the thread stays at most ``ahead`` frames ahead, so decoding overlaps detection and classification
    without holding the whole video in memory. A live source does not wait for the analysis: it keeps only the newest
    frames, so results are about now, not about a backlog that grows for as long as the analysis is slower than the
    camera (a camera does not pause; an RTSP server drops a client that stops reading).
    """

    def __init__(self, source: str | int, sampling: Sampling = Sampling(), decode_all: bool = False, ahead: int = 16,
                 start: int = 0, stop: int | None = None):
        import cv2

        self.source, self.sampling, self.decode_all = source, sampling, decode_all
        # Silent: what fails (opening, a server refusing, decoding stopping early) fer says in one line of its own, not
        # as OpenCV's and FFmpeg's log lines.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        if isinstance(source, str) and is_url(source):  # FFmpeg would wait for an unreachable server for minutes
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS]
            self.capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, timeouts)
        else:
            self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            raise InputError(cannot_open(source))
        # Phones store portrait videos as landscape frames plus a rotation in the container; read them as seen (OpenCV's
        # default today, said here so that it stays so).
        self.capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.info = VideoInfo(fps if 0 < fps < 1000 else 30.0, int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                              int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                              max(0, int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))))
        self.step = sampling_step(self.info.fps, sampling)
        self.start, self.stop = start, stop
        if start:  # OpenCV seeks to the key frame before it and decodes up to it: the frame itself, not its neighbour
            self.capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        self.decoded = start  # frames read so far (from the file's start)
        self.damaged = False  # a damaged file shows as fewer frames decoded than the container claims (see Outputs)
        self.live = is_live(source)
        self.queue: queue.Queue = queue.Queue(maxsize=2 if self.live else ahead)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._decode, daemon=True)
        self.thread.start()

    def _decode(self) -> None:
        index, started, shown = self.start, time.monotonic(), 0.0
        try:
            while not self.stopping.is_set() and (self.stop is None or index < self.stop):
                analyse = index % self.step == 0
                if analyse or self.decode_all:
                    ok, bgr = self.capture.read()
                else:
                    ok, bgr = self.capture.grab(), None  # skipped frames are not converted to pixels
                if not ok:
                    break
                self.decoded = index + 1
                # A live source's frames come when they come: stamped by the clock.
                shown = time.monotonic() - started if self.live else self._time_in_file(index, shown)
                if bgr is not None:  # frames only grabbed, between sampled ones, are not passed on
                    (self._put_newest if self.live else self._put)(Frame(index, shown, bgr, analyse))
                index += 1
        finally:
            self._put(None)

    def _time_in_file(self, index: int, previous: float) -> float:
        """When the frame just read is shown, by its timestamp: phones record at a variable frame rate (fewer frames a
        second in the dark), where index / fps drifts by seconds. A frame without a later timestamp than the one
        before (a file without timestamps) is placed one nominal frame after it."""
        import cv2

        shown = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
        return shown if index == 0 or shown > previous else previous + 1 / self.info.fps

    def _put(self, item) -> None:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put_newest(self, frame: Frame) -> None:
        """Never waits: when the queue is full, its oldest frame makes room (counted as decoded, not analysed)."""
        while True:
            try:
                self.queue.put_nowait(frame)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.queue.get_nowait()

    def __iter__(self) -> Iterator[Frame]:
        while (item := self.queue.get()) is not None:
            yield item

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self.capture.release()


class AnimationSource:
    """Frames of an animated GIF, WebP or PNG, decoded by PIL (OpenCV's FFmpeg reads GIFs but not animated WebP or
    PNG), each stamped with the time it is shown. ``info.fps`` is the average rate, which an annotated video plays at."""

    live = False

    def __init__(self, path: str, sampling: Sampling = Sampling(), decode_all: bool = False):
        self.path, self.decode_all = Path(path), decode_all
        self.durations, whole = frame_durations(self.path)
        self.damaged = not whole
        if not self.durations:
            raise InputError(f"{path}: cannot be read as an animation (a damaged file?)")
        self.starts = np.concatenate([[0.0], np.cumsum(self.durations)[:-1]])
        self.frames = animation_frames(self.path, len(self.durations))
        first = next(self.frames, None)
        if first is None:
            raise InputError(f"{path}: cannot be read as an animation (a damaged file?)")
        self.first = first
        height, width = first.shape[:2]
        self.info = VideoInfo(len(self.durations) / sum(self.durations), width, height, len(self.durations))
        self.step = sampling_step(self.info.fps, sampling)
        self.decoded = 0

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        for index, rgb in enumerate(itertools.chain([self.first], self.frames)):
            self.decoded = index + 1
            analyse = index % self.step == 0
            if analyse or self.decode_all:
                yield Frame(index, float(self.starts[index]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), analyse)

    def close(self) -> None:
        self.frames.close()


class Tracker:
    """Gives each face a face_id that persists across frames, and smooths its probabilities."""

    def __init__(self, classes: tuple[str, ...], smooth_s: float):
        self.classes, self.smooth_s = classes, smooth_s
        # id -> last box, time and analysed frame seen, smoothed probabilities
        self.tracks: dict[int, tuple[tuple[int, int, int, int], float, int, np.ndarray]] = {}
        self.next_id = 1
        self.frame = 0  # analysed frames so far

    def update(self, faces: list[Face], time_s: float) -> list[TrackedFace]:
        self.frame += 1
        self.tracks = {i: t for i, t in self.tracks.items()
                       if time_s - t[1] <= MAX_GAP_S or self.frame - t[2] <= MAX_MISSED + 1}
        pairs = sorted(((iou(face.box, track[0]), f, i) for f, face in enumerate(faces)
                        for i, track in self.tracks.items()), reverse=True)
        matched: dict[int, int] = {}
        for overlap, f, i in pairs:
            if overlap < MIN_IOU:
                break
            if f not in matched and i not in matched.values():
                matched[f] = i
        tracked = []
        for f, face in enumerate(faces):
            raw = np.array([face.scores[c] for c in self.classes])
            face_id = matched.get(f)
            if face_id is None:
                face_id, self.next_id = self.next_id, self.next_id + 1
                smoothed = raw
            else:
                _box, seen, _frame, previous = self.tracks[face_id]
                weight = 1.0 if self.smooth_s <= 0 else 1 - math.exp(-(time_s - seen) / self.smooth_s)
                smoothed = previous + weight * (raw - previous)
            self.tracks[face_id] = (face.box, time_s, self.frame, smoothed)
            raw_scores = dict(face.scores)
            face.scores = {c: round(float(p), 4) for c, p in zip(self.classes, smoothed)}
            face.label = self.classes[int(np.argmax(smoothed))]
            tracked.append(TrackedFace(face_id, face, raw_scores))
        return tracked


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def analyze_video(analyzer: FaceAnalyzer, source: VideoSource | AnimationSource, smooth_s: float,
                  batch_frames: int = 8) -> Iterator[FrameResult]:
    """Every decoded frame in order; analysed frames carry tracked faces, the others none.

    Faces of ``batch_frames`` analysed frames share one classifier call; a live source's frames are analysed one by
    one, as they come (a batch would hold each result back until the batch is full).
    """
    import cv2

    tracker = Tracker(analyzer.classifier.classes, smooth_s)
    pending: list[Frame] = []

    def flush() -> Iterator[FrameResult]:
        analysed = [f for f in pending if f.analyse]
        # No search of turned views: OpenCV's FFmpeg reader applies a video's rotation tag, a camera is upright, and
        # searching frame by frame would cost up to 4x and could flip between turns.
        found = [analyzer.find_faces("", Photo(cv2.cvtColor(f.bgr, cv2.COLOR_BGR2RGB), (f.bgr.shape[1], f.bgr.shape[0])),
                                     orient=False, small_faces=False) for f in analysed]
        analyzer.classify([result for result, _ in found], [crops for _, crops in found])
        results_of = {f.index: result for f, (result, _) in zip(analysed, found)}
        for frame in pending:
            result = results_of.get(frame.index)
            tracked = tracker.update(result.faces, frame.time_s) if result else []
            yield FrameResult(frame, tracked, result.too_small if result else [])
        pending.clear()

    for frame in source:
        pending.append(frame)
        if sum(f.analyse for f in pending) >= (1 if source.live else batch_frames):
            yield from flush()
    yield from flush()
