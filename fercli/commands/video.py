"""``fer predict`` on a video file or camera: a run folder with timeline.csv, summary.json and timeline.png,
optionally an annotated video; JSON lines per frame with --json; the per-face summary table at the end."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fercli import console
from fercli.errors import InputError
from fercli.faces.analyzer import FaceAnalyzer, min_face_advice
from fercli.runs import new_run_dir, write_image_atomic, write_text_atomic
from fercli.faces.media import Sampling, media_name
from fercli.faces.video import FrameResult, VideoInfo, analyze_video, open_clip

TABLE_FACES = 20  # the faces seen longest; a long video's broken tracks and passers-by would fill the screen
# OpenCV's FFmpeg has no H.264 encoder (a GPL/patent matter): .mp4 holds MPEG-4 Part 2, which players read and browsers
# do not; .webm holds VP8, which browsers and chat apps play (about 8x slower to encode).
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".webm": "VP80"}


def run_video(*, source: str | int, analyzer: FaceAnalyzer, sampling: Sampling, smooth_s: float, as_json: bool,
              save: Path | None, top_k: int, project: Path = Path("runs/predict"),
              on_done: Callable[[list[dict]], None] | None = None) -> int:
    """Returns the exit code; Ctrl-C still leaves every file complete (and stops a camera normally). ``on_done``: given
    the analysed frames' records when a file was read to its end (not when interrupted)."""
    label = f"camera {source}" if isinstance(source, int) else str(source)
    video = open_clip(source, sampling, decode_all=save is not None)
    run_dir = new_run_dir(project, media_name(source))
    outputs = Outputs(run_dir, label, analyzer.classifier.classes, video.info, save, top_k, live=video.live)
    progress = console.FrameProgress(label, video.info.frames)
    start, interrupted, records = time.perf_counter(), False, []
    try:
        for result in analyze_video(analyzer, video, smooth_s):
            outputs.add(result)
            if on_done is not None and result.frame.analyse:
                records.append(result.to_json(label))
            if as_json and result.frame.analyse:
                sys.stdout.write(json.dumps(result.to_json(label)) + "\n")
                if video.live:  # a pipe would hold a camera's lines back for kilobytes
                    sys.stdout.flush()
            progress.update(result.frame.index + 1, (result.frame.index + 1) / (time.perf_counter() - start),
                            now=faces_now(result) if result.frame.analyse else None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        video.close()
        summary = outputs.close(decoded=video.decoded, seconds=time.perf_counter() - start, interrupted=interrupted,
                                damaged=video.damaged)
    report(summary, run_dir, as_json)
    if interrupted and not video.live:
        raise KeyboardInterrupt  # a file run cut short: the CLI says so and exits 130, after the files were closed
    if on_done is not None:
        on_done(records)
    return 0


def save_video_run(*, video: dict, classes: tuple[str, ...], as_json: bool, project: Path = Path("runs/predict")) -> Path:
    """The run folder of a video analysed elsewhere (scale.tasks.analyze_video_file's result), as run_video writes it."""
    label = video["path"]
    info = VideoInfo(video["fps"], video["width"], video["height"], video["frames_claimed"])
    run_dir = new_run_dir(project, media_name(label))
    outputs = Outputs(run_dir, label, classes, info, save=None, top_k=1)
    for record in video["frames"]:
        result = FrameResult.from_json(record, record["too_small"])
        outputs.add(result)
        if as_json:
            sys.stdout.write(json.dumps(result.to_json(label)) + "\n")
    summary = outputs.close(decoded=video["decoded"], seconds=video["seconds"], interrupted=False, damaged=video["damaged"])
    report(summary, run_dir, as_json)
    return run_dir


def faces_now(result: FrameResult) -> str:
    """What a frame shows, for the progress line: "#1 happy 92%  #2 neutral 61%", or "no face"."""
    return "  ".join(f"#{t.face_id} {t.face.label} {t.face.scores[t.face.label]:.0%}" for t in result.faces) or "no face"


class Outputs:
    """Everything a video run writes, kept valid at every moment: the csv is flushed per frame batch."""

    def __init__(self, run_dir: Path, label: str, classes: tuple[str, ...], info: VideoInfo, save: Path | None, top_k: int,
                 live: bool = False):
        self.run_dir, self.label, self.classes, self.info, self.top_k, self.live = run_dir, label, classes, info, top_k, live
        self.csv_file = open(run_dir / "timeline.csv", "w", newline="")
        self.csv = csv.writer(self.csv_file)
        self.csv.writerow(["frame", "time_s", "face_id", "x", "y", "w", "h", "detector_score", "label", *classes,
                           *[f"raw_{c}" for c in classes]])
        self.times: dict[int, list[float]] = {}
        self.probs: dict[int, list[np.ndarray]] = {}
        self.analysed = 0
        self.too_small: list[int] = []  # sides of the faces left out for their size, every analysed frame's
        self.small_frames = 0
        self.writer, self.save, self.last_faces, self.written = None, save, [], 0
        self.last_time_s = 0.0
        if save is not None:
            self.writer = open_writer(save, info)

    def add(self, result: FrameResult) -> None:
        frame = result.frame
        self.last_time_s = frame.time_s
        if frame.analyse:
            self.analysed += 1
            self.last_faces = result.faces
            self.small_frames += bool(result.too_small)
            self.too_small += result.too_small
            for t in result.faces:
                scores = [t.face.scores[c] for c in self.classes]
                self.csv.writerow([frame.index, f"{frame.time_s:.3f}", t.face_id, *t.face.box, t.face.detector_score,
                                   t.face.label, *scores, *[t.raw[c] for c in self.classes]])
                self.times.setdefault(t.face_id, []).append(frame.time_s)
                self.probs.setdefault(t.face_id, []).append(np.array(scores))
            if self.analysed % 8 == 0:
                self.csv_file.flush()
        if self.writer is not None:
            from fercli.faces.draw import draw_faces

            # A camera's frames come when they come, and those that came while fer was busy are skipped: written by the
            # clock instead (a frame repeated until the next, or left out), the video plays in real time, not faster.
            copies = max(0, round(frame.time_s * self.info.fps) + 1 - self.written) if self.live else 1
            if copies:
                # Frames between sampled ones show the last analysed faces.
                faces = [t.face for t in self.last_faces]
                drawn = draw_faces(frame.bgr, faces, top_k=self.top_k, names=[f"#{t.face_id}" for t in self.last_faces])
                for _ in range(copies):
                    self.writer.write(drawn)
                self.written += copies

    def close(self, decoded: int, seconds: float, interrupted: bool, damaged: bool = False) -> dict:
        self.csv_file.close()
        if self.writer is not None:
            self.writer.release()
        summary = self.summary(decoded, seconds, interrupted, damaged)
        write_text_atomic(json.dumps(summary, indent=2), self.run_dir / "summary.json")
        if self.times:
            from fercli.faces.draw import draw_timeline

            picture = draw_timeline(self.times, {i: np.stack(p) for i, p in self.probs.items()}, self.classes,
                                    f"{Path(self.label).name}: smoothed expression probabilities per face",
                                    self.duration_s(decoded))
            write_image_atomic(picture, self.run_dir / "timeline.png")
        return summary

    def duration_s(self, decoded: int) -> float:
        """A file's frames at its frame rate; a camera's by the clock (a webcam that claims 30 frames/s sends 15 in dim
        light, and frames fer skipped are counted as decoded)."""
        return self.last_time_s + 1 / self.info.fps if self.live else decoded / self.info.fps

    def summary(self, decoded: int, seconds: float, interrupted: bool, damaged: bool = False) -> dict:
        faces = []
        for face_id, times in self.times.items():
            probs = np.stack(self.probs[face_id])
            labels = probs.argmax(1)
            share = {c: round(float((labels == k).mean()), 4) for k, c in enumerate(self.classes)}
            faces.append({"face_id": face_id, "frames": len(times), "first_s": round(times[0], 3),
                          "last_s": round(times[-1], 3), "dominant": max(share, key=share.get), "share": share})
        claimed = self.info.frames
        stopped = ""
        if interrupted:
            stopped = f"interrupted after frame {decoded}"
        elif self.live:  # only Ctrl-C ends a camera on purpose
            stopped = (f"the stream ended after frame {decoded} ({self.duration_s(decoded):.1f} s): the camera stopped "
                       "sending or the connection was lost; results cover what was read")
        elif damaged:
            stopped = f"the file is damaged or cut after frame {decoded}; results cover what was read"
        elif claimed and decoded < claimed - 1:  # containers often round their frame count by one
            stopped = (f"could not decode past frame {decoded} ({decoded / self.info.fps:.2f} s) of the "
                       f"{claimed} the file claims; results cover what was read")
        return {"path": self.label, "status": "ok" if faces else "no_face", "fps": round(self.info.fps, 3),
                "size": [self.info.width, self.info.height], "frames_decoded": decoded, "frames_analysed": self.analysed,
                "duration_s": round(self.duration_s(decoded), 3), "processing_s": round(seconds, 2),
                "frames_per_s": round(decoded / seconds, 1) if seconds > 0 else 0.0, "stopped": stopped,
                "annotated": str(self.save) if self.save else None, "faces": faces,
                "frames_with_faces_under_min_face": self.small_frames,
                "faces_under_min_face_px": [min(self.too_small), max(self.too_small)] if self.too_small else None}


def open_writer(path: Path, info: VideoInfo):
    import cv2

    fourcc = FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise InputError(f"--save {path}: an annotated video is written as .mp4, .webm (plays in browsers) or .avi")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), info.fps, (info.width, info.height))
    if not writer.isOpened():
        raise InputError(f"--save {path}: OpenCV cannot write a video there; check the folder, or use .avi")
    return writer


def too_small_line(summary: dict, frames_named: str) -> str:
    """Faces found under --min-face, and the --min-face that reads them; "" when there were none."""
    frames = summary.get("frames_with_faces_under_min_face", 0)
    if not frames:
        return ""
    smallest, largest = summary["faces_under_min_face_px"]
    return f"faces smaller than --min-face in {frames} of {frames_named} {min_face_advice(smallest, largest)}"


def report(summary: dict, run_dir: Path, as_json: bool) -> None:
    if summary["stopped"]:
        console.warn(f"{summary['path']}: {summary['stopped']}")
    if as_json:
        console.info(f"Results saved to {run_dir}")
        return
    if summary["status"] == "no_face":
        # Video frames get no closer look for small faces (photos do): say how to give one.
        small = too_small_line(summary, "them")
        console.result_line(f"{summary['path']}: no face found in {summary['frames_analysed']} analysed frames" +
                            (f", but {small}" if small else " (small faces, a wide shot: --detect-size 1280)"))
    else:
        from fercli.faces.draw import longest_seen

        shown = set(longest_seen({f["face_id"]: f["frames"] for f in summary["faces"]}, most=TABLE_FACES))
        rows = [[f["face_id"], f"{f['first_s']:.1f}-{f['last_s']:.1f} s", f["frames"], f["dominant"],
                 ", ".join(f"{c} {s:.0%}" for c, s in sorted(f["share"].items(), key=lambda kv: -kv[1])[:3] if s > 0)]
                for f in summary["faces"] if f["face_id"] in shown]
        title = (f"{summary['path']}: {summary['frames_decoded']} frames, {summary['frames_analysed']} analysed, "
                 f"{summary['frames_per_s']} frames/s")
        console.show(console.make_table(title, ["face", "seen", "frames", "mostly", "share of time"], rows))
        if len(shown) < len(summary["faces"]):
            left_out = [f["frames"] for f in summary["faces"] if f["face_id"] not in shown]
            console.result_line(f"and {len(left_out)} more faces seen in {max(left_out)} frames or fewer each "
                                f"(summary.json and timeline.csv have them all)")
        if small := too_small_line(summary, f"the {summary['frames_analysed']} analysed frames"):
            console.info(f"{summary['path']}: also {small}")
    console.result_line(f"Results saved to {run_dir}")
