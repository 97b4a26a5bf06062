"""fer predict on videos: per-frame JSON, timestamps, face ids across frames, the run folder, the annotated video."""

import csv
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from fercli.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FPS = 25
runner = CliRunner()


def panned_frames(frames: int, pan: int = 2, faces: bool = True, size=(640, 480)):
    """examples/two_faces.jpg (BGR) seen through a 640x480 window that pans right and zooms in slowly: the left
    face is in view the whole time, the right one never; or a face-free grey gradient."""
    photo = cv2.imread(str(EXAMPLES / "two_faces.jpg"))
    for i in range(frames):
        if faces:
            zoom = 1.0 + 0.1 * i / frames
            turn = np.array([[zoom, 0, -pan * i * zoom], [0, zoom, 0]], dtype=np.float64)
            yield cv2.warpAffine(photo, turn, size, borderMode=cv2.BORDER_REFLECT)
        else:
            yield np.tile(np.linspace(60, 200, size[0], dtype=np.uint8), (size[1], 1))[:, :, None].repeat(3, axis=2)


def write_video(path: Path, frames: int, pan: int = 2, faces: bool = True, size=(640, 480)) -> Path:
    fourcc = {".avi": "MJPG", ".vob": "MPEG", ".flv": "FLV1"}.get(path.suffix, "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, size)
    for frame in panned_frames(frames, pan, faces, size):
        writer.write(frame)
    writer.release()
    return path


def write_animation(path: Path, durations_ms: list[int]) -> Path:
    """The panned frames as an animated GIF, WebP or PNG (by the suffix), each shown for its duration."""
    from PIL import Image

    frames = [Image.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in panned_frames(len(durations_ms), pan=4)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations_ms, loop=0)
    return path


def mark_turned_90(path: Path) -> Path:
    """Write into an MP4's track header the display matrix of a phone's portrait video (turn 90 degrees clockwise)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    version_1 = data[at + 4] == 1
    # After the box type: version/flags, times, track id, reserved, duration, reserved, layer, group, volume, reserved.
    matrix = at + 4 + 4 + (8 + 8 + 4 + 4 + 8 if version_1 else 5 * 4) + 8 + 2 + 2 + 2 + 2
    data[matrix:matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def set_frame_durations(path: Path, ticks: list[int]) -> Path:
    """Rewrite an MP4's time-to-sample table so that frame i lasts ticks[i] (a variable frame rate, as phones record
    in dim light), and the durations of the media, movie, track and edit list to match."""
    data = bytearray(path.read_bytes())
    runs: list[list[int]] = []
    for tick in ticks:
        if runs and runs[-1][1] == tick:
            runs[-1][0] += 1
        else:
            runs.append([1, tick])
    stts = struct.pack(">I4sII", 16 + 8 * len(runs), b"stts", 0, len(runs)) + b"".join(struct.pack(">II", *r) for r in runs)
    at = data.find(b"stts") - 4
    old_size = struct.unpack(">I", data[at:at + 4])[0]
    data[at:at + old_size] = stts
    for name in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):  # the boxes holding stts grow with it (moov is last)
        box = data.find(name) - 4
        data[box:box + 4] = struct.pack(">I", struct.unpack(">I", data[box:box + 4])[0] + len(stts) - old_size)

    def field(box: bytes, offset: int) -> slice:  # a 32-bit field of a version-0 box, counted from after its type
        start = data.find(box) + 4 + offset
        return slice(start, start + 4)

    media_scale, movie_scale = (struct.unpack(">I", data[field(box, 12)])[0] for box in (b"mdhd", b"mvhd"))
    movie_duration = round(sum(ticks) / media_scale * movie_scale)
    for box, offset, value in ((b"mdhd", 16, sum(ticks)), (b"mvhd", 16, movie_duration), (b"tkhd", 20, movie_duration),
                               (b"elst", 8, movie_duration)):
        data[field(box, offset)] = struct.pack(">I", value)
    path.write_bytes(bytes(data))
    return path


def predict(*args):
    return runner.invoke(app, ["predict", *[str(a) for a in args]])


def test_json_lines_timestamps_and_one_face_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = write_video(tmp_path / "clip.mp4", 30)
    result = predict(video, "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(30))
    assert all(r["time_s"] == pytest.approx(r["frame"] / FPS, abs=1e-3) for r in records)
    assert set(records[0]) == {"path", "frame", "time_s", "faces"}
    assert set(records[0]["faces"][0]) == {"face_id", "box", "label", "scores", "raw_scores", "detector_score"}
    assert all(len(r["faces"]) == 1 and r["faces"][0]["face_id"] == 1 for r in records)  # one person, one id
    assert "Results saved to" in result.stderr  # stdout carries JSON only


def test_run_folder_csv_summary_and_timeline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = write_video(tmp_path / "talk.mp4", 30)
    result = predict(video, "--fps", 5)  # every 5th frame of a 25 frames/s video
    assert result.exit_code == 0, result.output
    run_dir = Path(result.stdout.strip().splitlines()[-1].removeprefix("Results saved to "))
    assert run_dir == Path("runs/predict/talk") and (run_dir / "timeline.png").stat().st_size > 0
    rows = list(csv.DictReader(open(run_dir / "timeline.csv")))
    assert [int(r["frame"]) for r in rows] == [0, 5, 10, 15, 20, 25]
    assert {"time_s", "face_id", "x", "y", "w", "h", "label", "happy", "raw_happy"} <= set(rows[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["frames_decoded"] == 30 and summary["frames_analysed"] == 6
    face = summary["faces"][0]
    assert face["face_id"] == 1 and face["frames"] == 6 and face["first_s"] == 0 and face["last_s"] == pytest.approx(1.0)
    assert sum(face["share"].values()) == pytest.approx(1, abs=1e-3) and face["dominant"] in face["share"]
    again = predict(video, "--fps", 5)  # a second run never overwrites the first
    assert again.stdout.strip().endswith("runs/predict/talk-2")


def test_summary_table_of_a_long_video_lists_the_faces_seen_longest(capsys):
    """25 faces, face i seen in i frames: the table lists faces 6-25 and says 5 more were seen in 5 frames or fewer."""
    from fercli.commands.video import report

    share = {"happy": 1.0}
    faces = [{"face_id": i, "frames": i, "first_s": 0.0, "last_s": 1.0, "dominant": "happy", "share": share}
             for i in range(1, 26)]
    report({"path": "talk.mp4", "status": "ok", "stopped": "", "frames_decoded": 99, "frames_analysed": 99,
            "frames_per_s": 30.0, "faces": faces}, Path("runs/predict/talk"), as_json=False)
    printed = capsys.readouterr().out
    rows = [line.split("│")[1].strip() for line in printed.splitlines() if line.startswith("│")]
    assert rows == [str(i) for i in range(6, 26)]
    assert "and 5 more faces seen in 5 frames or fewer each (summary.json and timeline.csv have them all)" in printed


def test_smoothing_follows_time_not_frames():
    from fercli.faces.analyzer import Face
    from fercli.faces.video import Tracker

    classes = ("a", "b")
    tracker = Tracker(classes, smooth_s=1.0)
    tracker.update([Face((0, 0, 10, 10), scores={"a": 1.0, "b": 0.0})], 0.0)
    [tracked] = tracker.update([Face((1, 0, 10, 10), scores={"a": 0.0, "b": 1.0})], 1.0)  # one time constant later
    assert tracked.face_id == 1 and tracked.face.scores["b"] == pytest.approx(1 - np.exp(-1), abs=1e-3)
    assert tracked.raw == {"a": 0.0, "b": 1.0} and tracked.face.label == "b"
    [far] = tracker.update([Face((500, 0, 10, 10), scores={"a": 1.0, "b": 0.0})], 1.04)  # no overlap: a new face
    assert far.face_id == 2 and far.face.scores == {"a": 1.0, "b": 0.0}


def test_tracks_last_across_sparse_sampling():
    """At --fps 0.5 (2 s between analysed frames) a face in place keeps its id; a track ends only when unseen both for
    a second and in the last analysed frames (before: a new id every frame, each track older than 1 s)."""
    from fercli.faces.analyzer import Face
    from fercli.faces.video import Tracker

    tracker = Tracker(("a", "b"), smooth_s=0.5)

    def face():
        return Face((0, 0, 10, 10), scores={"a": 1.0, "b": 0.0})

    ids = [t.face_id for time_s in (0.0, 2.0, 4.0) for t in tracker.update([face()], time_s)]
    assert ids == [1, 1, 1]
    tracker.update([], 6.0)  # missed once: kept
    assert [t.face_id for t in tracker.update([face()], 8.0)] == [1]
    tracker.update([], 10.0)
    tracker.update([], 12.0)  # missed twice and for 4 s: ended
    assert [t.face_id for t in tracker.update([face()], 14.0)] == [2]
    quick = Tracker(("a", "b"), smooth_s=0.5)  # at 25 frames/s, a second unseen still ends a track
    quick.update([face()], 0.0)
    for k in range(1, 27):
        quick.update([], k / 25)
    assert [t.face_id for t in quick.update([face()], 27 / 25)] == [2]


def test_annotated_video_has_every_frame(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = write_video(tmp_path / "clip.mp4", 20)
    out = tmp_path / "annotated.mp4"
    result = predict(video, "--every", 4, "--save", out)
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 20 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 640, 3)
    assert predict(video, "--save", out).exit_code == 1  # refuses to overwrite it
    web = tmp_path / "for the browser.webm"  # VP8: what a browser or a chat app plays
    assert predict(video, "--every", 4, "--save", web).exit_code == 0
    capture = cv2.VideoCapture(str(web))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 20 and web.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # Matroska/WebM's EBML header


def test_video_without_faces_is_no_face(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = predict(write_video(tmp_path / "wall.mp4", 10, faces=False))
    assert result.exit_code == 0 and "no face found in 10 analysed frames" in result.stdout
    assert "--detect-size 1280" in result.stdout  # what to try for a wide shot's small faces
    assert json.loads(Path("runs/predict/wall/summary.json").read_text())["status"] == "no_face"


def test_a_wide_shot_whose_faces_are_under_min_face_says_so_and_how_to_read_them(tmp_path, monkeypatch):
    """Before: "no face found ... (a wide shot: --detect-size 1280)", and that size found the faces and dropped them
    for their size too. Now the frames with faces under --min-face are counted, in the line and in summary.json."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_faces import group_photo

    monkeypatch.chdir(tmp_path)
    group_photo(tmp_path / "wide.jpg", [32, 34, 36], size=(1280, 720))
    frame = cv2.imread(str(tmp_path / "wide.jpg"))
    writer = cv2.VideoWriter(str(tmp_path / "wide.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1280, 720))
    for _ in range(6):
        writer.write(frame)
    writer.release()
    result = predict(tmp_path / "wide.mp4")
    assert result.exit_code == 0, result.output
    assert "no face found in 6 analysed frames, but faces smaller than --min-face in 6 of them (" in result.stdout
    summary = json.loads(Path("runs/predict/wide/summary.json").read_text())
    assert summary["frames_with_faces_under_min_face"] == 6 and 24 <= summary["faces_under_min_face_px"][0] < 40
    smallest = summary["faces_under_min_face_px"][0]
    lines = predict(tmp_path / "wide.mp4", "--min-face", smallest, "--json").stdout.splitlines()
    assert [len(json.loads(line)["faces"]) for line in lines] == [3] * 6


def test_truncated_video_gives_what_was_read_and_says_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    whole = write_video(tmp_path / "whole.avi", 40)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = predict(cut, "--json")
    assert result.exit_code == 0 and "Traceback" not in result.output
    frames = [json.loads(line)["frame"] for line in result.stdout.splitlines()]
    assert 5 < len(frames) < 40 and "could not decode past frame" in result.stderr
    summary = json.loads(Path("runs/predict/cut/summary.json").read_text())
    assert summary["frames_decoded"] == len(frames) and summary["stopped"]


def test_not_a_video_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    result = predict(fake)
    assert result.exit_code == 1 and "cannot be opened as a video" in result.stderr and "Traceback" not in result.output


def test_ctrl_c_leaves_complete_files(tmp_path):
    video = write_video(tmp_path / "long.avi", 400, pan=0)
    args = [sys.executable, "-m", "fercli", "predict", str(video), "--save", str(tmp_path / "out.avi")]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    timeline = tmp_path / "runs" / "predict" / "long" / "timeline.csv"
    deadline = time.time() + 60
    while time.time() < deadline and not (timeline.is_file() and len(timeline.read_text().splitlines()) > 10):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr
    rows = list(csv.DictReader(open(timeline)))
    summary = json.loads((timeline.parent / "summary.json").read_text())
    assert 10 <= len(rows) < 400 and summary["stopped"].startswith("interrupted")
    capture = cv2.VideoCapture(str(tmp_path / "out.avi"))
    ok, _frame = capture.read()
    assert ok  # the annotated video was closed properly and plays


def test_missing_camera_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = predict("--source", 57)  # no machine running the tests has a 58th camera
    assert result.exit_code == 1 and "camera 57: cannot be opened" in result.stderr and "Traceback" not in result.output
    assert predict().exit_code == 1  # neither inputs nor a camera


def test_phone_video_with_a_rotation_tag_is_read_upright(tmp_path, monkeypatch):
    """A portrait phone video: frames stored sideways, the container says turn them 90 degrees. Read as stored, the
    face lies on its side; read as the tag says, it is found upright in a portrait frame."""
    monkeypatch.chdir(tmp_path)
    photo = cv2.imread(str(EXAMPLES / "astronaut.jpg"))[:, :400]  # 400 wide, 512 high: portrait
    sideways = cv2.rotate(photo, cv2.ROTATE_90_COUNTERCLOCKWISE)  # 512 wide, 400 high: what the phone stores
    path = tmp_path / "portrait.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (512, 400))
    for _ in range(5):
        writer.write(sideways)
    writer.release()
    mark_turned_90(path)
    result = predict(path, "--json")
    assert result.exit_code == 0, result.output
    face = json.loads(result.stdout.splitlines()[0])["faces"][0]
    cv2.imwrite(str(tmp_path / "portrait.png"), photo)
    upright = predict(tmp_path / "portrait.png", "--json")
    expected = json.loads(upright.stdout)["faces"][0]
    assert np.abs(np.subtract(face["box"], expected["box"])).max() <= 8  # where the face is in the upright frame
    assert face["label"] == expected["label"] == "happy"


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png"])
def test_animated_image_is_a_clip_timed_as_browsers_show_it(tmp_path, monkeypatch, suffix):
    """A reaction GIF is a clip: every frame analysed, stamped with when it is shown (a GIF's 0 ms means 100 ms, as
    in browsers), one face id throughout; OpenCV's FFmpeg reads no animated WebP or PNG, so PIL decodes them."""
    monkeypatch.chdir(tmp_path)
    durations = [100, 100, 300, 50, 100, 100] if suffix != ".gif" else [100, 100, 300, 0, 100, 100]
    clip = write_animation(tmp_path / f"reaction{suffix}", durations)
    result = predict(clip, "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    starts = [0.0, 0.1, 0.2, 0.5, 0.55 if suffix != ".gif" else 0.6, 0.65 if suffix != ".gif" else 0.7]
    assert [r["frame"] for r in records] == list(range(6))
    assert [r["time_s"] for r in records] == pytest.approx(starts, abs=1e-3)
    assert all(len(r["faces"]) == 1 and r["faces"][0]["face_id"] == 1 for r in records)
    summary = json.loads(Path("runs/predict/reaction/summary.json").read_text())
    assert summary["frames_decoded"] == 6 and summary["size"] == [640, 480] and not summary["stopped"]
    assert summary["duration_s"] == pytest.approx(sum(durations) / 1000 if suffix != ".gif" else 0.8, abs=1e-3)


def test_cut_animated_gif_gives_what_was_read_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    whole = write_animation(tmp_path / "whole.gif", [100] * 8)
    cut = tmp_path / "cut.gif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = predict(cut, "--json")
    assert result.exit_code == 0 and "Traceback" not in result.output
    frames = [json.loads(line)["frame"] for line in result.stdout.splitlines()]
    assert 1 <= len(frames) < 8 and f"damaged or cut after frame {len(frames)}" in result.stderr


def test_animated_gif_saved_as_a_video_and_sampled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clip = write_animation(tmp_path / "reaction.gif", [100] * 8)  # 10 frames/s
    result = predict(clip, "--fps", 5, "--save", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["frame"] for line in result.stdout.splitlines()] == [0, 2, 4, 6]
    capture = cv2.VideoCapture(str(tmp_path / "out" / "reaction_fer.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10)


def test_still_gif_and_two_picture_jpeg_stay_photos(tmp_path):
    """Only an animation is a clip. Many phones' JPEGs carry a second picture (MPO: a depth map, a preview) that PIL
    counts as a frame: still a photo."""
    from PIL import Image

    photo = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    photo.save(tmp_path / "still.gif")
    photo.save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=[photo.resize((160, 160))])
    assert Image.open(tmp_path / "phone.jpg").n_frames == 2
    for name in ("still.gif", "phone.jpg"):
        result = predict(tmp_path / name, "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert record["status"] == "ok" and record["faces"][0]["label"] == "happy" and "frame" not in record


def test_phone_camcorder_and_unnamed_videos_are_videos(tmp_path, monkeypatch):
    """.3gp (phones, messaging apps), .mts (camcorders), .flv and .vob are found in folders; a video whose name says
    nothing is read by its content; a file that is neither photo nor video gets one line."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "clips"
    folder.mkdir()
    for suffix in (".3gp", ".mts", ".flv", ".vob"):
        write_video(folder / f"clip{suffix}", 6)
    result = predict(folder, "--json")
    assert result.exit_code == 0, result.output
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert sorted(set(paths)) == sorted(str(p) for p in folder.iterdir()) and len(paths) == 4 * 6
    unnamed = tmp_path / "download"
    unnamed.write_bytes((folder / "clip.3gp").read_bytes())
    assert len(predict(unnamed, "--json").stdout.splitlines()) == 6
    junk = tmp_path / "notes.dat"
    junk.write_text("not a photo, not a video")
    result = predict(junk)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "notes.dat: neither an image PIL reads nor a video OpenCV's FFmpeg reads" in result.stderr


def test_live_photo_clips_in_a_folder_are_skipped_and_said_so(tmp_path, monkeypatch):
    """A phone's export: IMG_0001.HEIC's Live Photo clip IMG_0001.MOV is skipped (one line on stderr), a video of
    its own (IMG_0002.MOV) is read, and the clip named on the command line is read too."""
    import shutil

    monkeypatch.chdir(tmp_path)
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(EXAMPLES / "astronaut.jpg", export / "IMG_0001.JPG")
    write_video(export / "IMG_0001.MOV", 5)
    write_video(export / "IMG_0002.MOV", 5)
    result = predict(export, "--json")
    assert result.exit_code == 0, result.output
    paths = {Path(json.loads(line)["path"]).name for line in result.stdout.splitlines()}
    assert paths == {"IMG_0001.JPG", "IMG_0002.MOV"}
    assert "skipped 1 Live Photo clip (a .MOV beside the photo of the same name, such as IMG_0001.MOV)" in result.stderr
    named = predict(export / "IMG_0001.MOV", "--json")
    assert named.exit_code == 0 and len(named.stdout.splitlines()) == 5


def test_variable_frame_rate_video_is_timed_by_its_timestamps(tmp_path, monkeypatch):
    """A phone video that drops from 25 to 12.5 frames a second halfway (as in dim light): each frame's time is its own
    timestamp, not its index over the average rate (which would put frame 10 at 0.6 s instead of 0.4 s)."""
    monkeypatch.chdir(tmp_path)
    video = write_video(tmp_path / "dusk.mp4", 20)
    timescale = struct.unpack(">I", video.read_bytes()[video.read_bytes().find(b"mdhd") + 16:][:4])[0]
    set_frame_durations(video, [timescale // 25] * 10 + [timescale * 2 // 25] * 10)
    result = predict(video, "--json")
    assert result.exit_code == 0, result.output
    times = [json.loads(line)["time_s"] for line in result.stdout.splitlines()]
    assert times == pytest.approx([i * 0.04 for i in range(10)] + [0.4 + i * 0.08 for i in range(10)], abs=1e-3)
    summary = json.loads(Path("runs/predict/dusk/summary.json").read_text())
    assert summary["frames_decoded"] == 20 and summary["faces"][0]["last_s"] == pytest.approx(1.12, abs=1e-3)


def test_json_piped_to_a_file_from_a_terminal_all_reaches_the_file(tmp_path):
    """`fer predict clips/ --json > frames.jsonl` typed in a terminal: stderr is a tty, so progress bars draw there;
    every JSON line must still reach stdout (Rich's bars, left to their default, took stdout's lines for themselves)."""
    import pty
    import shutil
    import threading

    video = write_video(tmp_path / "clip.mp4", 12)
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(EXAMPLES / "astronaut.jpg", tmp_path / name)
    terminal, tty = pty.openpty()

    def drain() -> None:  # read what the bars draw, so that a full pty never blocks fer
        try:
            while os.read(terminal, 4096):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    try:
        for inputs, expected in (([video], 12), ([tmp_path / "a.jpg", tmp_path / "b.jpg"], 2)):
            run = subprocess.run([sys.executable, "-m", "fercli", "predict", *map(str, inputs), "--json"], cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=tty, stdin=subprocess.DEVNULL, timeout=120,
                                 env={**os.environ, "TERM": "xterm", "OMP_NUM_THREADS": "1"})
            lines = run.stdout.decode().splitlines()
            assert run.returncode == 0 and len(lines) == expected, (inputs, lines[:3])
            assert all(json.loads(line)["path"] for line in lines)
    finally:
        os.close(tty)
        os.close(terminal)
