"""fer predict at scale: --csv and --parquet tables that a rerun goes on with, the tasks --ray sends out, and --ray on a
local Ray instance and on a two-node cluster made on this machine (each test starts and stops its own)."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fercli.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()
sys.path.insert(0, str(Path(__file__).parent))


def photo_folder(root: Path, copies: int = 1) -> Path:
    """Two photos with faces (three faces), a face-free grey one and a broken JPEG, ``copies`` times over."""
    root.mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        shutil.copy(EXAMPLES / "astronaut.jpg", root / f"astronaut{k}.jpg")
        shutil.copy(EXAMPLES / "two_faces.jpg", root / f"two_faces{k}.jpg")
        Image.fromarray(np.full((200, 300), 128 + k % 100, np.uint8)).save(root / f"grey{k}.png")
        (root / f"broken{k}.jpg").write_bytes(b"\xff\xd8\xff cut short")
    return root


def fer(*args, cwd: Path, timeout=300, env: dict | None = None):
    """`fer` in its own process, as a user runs it (Ray's workers are processes of their own), in ``cwd`` (runs/)."""
    return subprocess.run([sys.executable, "-m", "fercli", *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env or {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})


def by_path(stdout: str) -> dict[str, dict]:
    return {record["path"]: record for record in map(json.loads, stdout.splitlines())}


def assert_same_records(a: dict[str, dict], b: dict[str, dict]) -> None:
    """Same inputs, statuses and labels; boxes within a pixel."""
    assert a.keys() == b.keys()
    for path in a:
        assert a[path]["status"] == b[path]["status"], path
        assert [f["label"] for f in a[path]["faces"]] == [f["label"] for f in b[path]["faces"]], path
        for fa, fb in zip(a[path]["faces"], b[path]["faces"]):
            assert np.abs(np.subtract(fa["box"], fb["box"])).max() <= 1, path


# ------------------------------------------------------------------ tables and tasks, without Ray


def test_parquet_has_the_csv_rows_and_a_rerun_goes_on_with_it(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="--parquet needs pyarrow (the ray extra)")
    folder = photo_folder(tmp_path / "photos")
    table, sheet = tmp_path / "faces.parquet", tmp_path / "faces.csv"
    first = runner.invoke(app, ["predict", str(folder / "astronaut0.jpg"), str(folder / "grey0.png"),
                                "--parquet", str(table), "--csv", str(sheet)])
    assert first.exit_code == 0, first.output
    rows = pq.read_table(table).to_pylist()
    assert [(Path(r["file"]).name, r["status"], r["face"]) for r in rows] == [("astronaut0.jpg", "ok", 1),
                                                                               ("grey0.png", "no_face", None)]
    sheet_rows = list(csv.DictReader(open(sheet)))
    assert list(rows[0]) == list(sheet_rows[0])  # the same columns, in the same order
    assert [(r["file"], r["label"] or "", r["x"] or "") for r in rows] == [(r["file"], r["label"], r["x"] and int(r["x"]))
                                                                          for r in sheet_rows]
    assert not (tmp_path / "faces.parquet.parts").exists()
    # The whole folder with the same files: the two done are kept, the other two added, nothing twice.
    again = runner.invoke(app, ["predict", str(folder), "--parquet", str(table), "--csv", str(sheet), "--json"])
    assert again.exit_code == 1 and "holds 2 of these inputs from before" in again.stderr  # broken0.jpg: unreadable
    assert sorted(Path(p).name for p in by_path(again.stdout)) == ["broken0.jpg", "two_faces0.jpg"]
    files = [Path(r["file"]).name for r in pq.read_table(table).to_pylist()]
    assert sorted(files) == sorted(Path(r["file"]).name for r in csv.DictReader(open(sheet)))
    assert sorted(files) == ["astronaut0.jpg", "broken0.jpg", "grey0.png", "two_faces0.jpg", "two_faces0.jpg"]
    # Other settings would mix two kinds of rows in one table: refused, the file left as it was.
    before = table.read_bytes()
    other = runner.invoke(app, ["predict", str(folder), "--parquet", str(table), "--detect-size", "320"])
    assert other.exit_code == 1 and "was made with other settings (detect_size)" in other.stderr
    assert table.read_bytes() == before
    # A new table beside one that holds results: refused, rather than emptying the old one to match.
    rows_before = sheet.read_text()
    beside = runner.invoke(app, ["predict", str(folder), "--csv", str(sheet), "--parquet", str(tmp_path / "new.parquet")])
    assert beside.exit_code == 1 and "new.parquet is new, but" in beside.stderr and sheet.read_text() == rows_before
    fresh = runner.invoke(app, ["predict", str(folder / "grey0.png"), "--parquet", str(table), "--overwrite"])
    assert fresh.exit_code == 0 and [r["file"] for r in pq.read_table(table).to_pylist()] == [str(folder / "grey0.png")]


def test_a_stopped_parquet_run_leaves_parts_that_the_rerun_keeps(tmp_path):
    pytest.importorskip("pyarrow")
    from fercli.commands.tables import ParquetSink, photo_rows

    classes = ("happy", "sad")
    record = {"path": "a.jpg", "status": "ok", "size": [10, 10], "turned": 0,
              "faces": [{"box": [1, 2, 3, 4], "label": "happy", "scores": {"happy": 0.9, "sad": 0.1},
                         "detector_score": 0.95, "landmarks": None}]}
    path = tmp_path / "out.parquet"
    stopped = ParquetSink(path, classes, overwrite=False, settings={"model": "m"})
    stopped.drop_except(set())
    stopped.add(photo_rows(record, classes))
    stopped.flush()  # what a run killed after its first flush leaves: a part, no file
    assert not path.exists() and len(list((tmp_path / "out.parquet.parts").iterdir())) == 1
    resumed = ParquetSink(path, classes, overwrite=False, settings={"model": "m"})
    assert resumed.done == {"a.jpg"}
    resumed.drop_except(resumed.done)
    resumed.add(photo_rows({**record, "path": "b.jpg"}, classes))
    resumed.close()
    import pyarrow.parquet as pq

    assert [r["file"] for r in pq.read_table(path).to_pylist()] == ["a.jpg", "b.jpg"]
    assert not (tmp_path / "out.parquet.parts").exists()


def test_a_task_never_fails_as_a_whole(tmp_path):
    """A broken photo is a record with its error; so is a video that cannot be opened, and a photo fer fails on."""
    from fercli.faces.analyzer import FaceAnalyzer
    from fercli.faces.media import Sampling
    from fercli.scale.tasks import plan_tasks, run_task

    folder = photo_folder(tmp_path / "photos")
    photos = sorted(str(p) for p in folder.iterdir())
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    tasks = plan_tasks(photos, [str(tmp_path / "clip.mp4")], per_task=3)
    assert [(t["kind"], len(t["paths"])) for t in tasks] == [("video", 1), ("photos", 3), ("photos", 1)]
    json.dumps(tasks)  # plain data: it travels through Ray as it is
    analyzer = FaceAnalyzer()
    video = run_task(analyzer, tasks[0], sampling=Sampling(), smooth_s=0.5)["video"]
    assert video["path"] == str(tmp_path / "clip.mp4") and video["error"]
    done = [run_task(analyzer, task, sampling=Sampling(), smooth_s=0.5) for task in tasks[1:]]
    records = [r for result in done for r in result["records"]]
    assert [(Path(r["path"]).name, r["status"]) for r in records] == [
        ("astronaut0.jpg", "ok"), ("broken0.jpg", "error"), ("grey0.png", "no_face"), ("two_faces0.jpg", "ok")]

    def explode(*args, **kwargs):
        raise ValueError("a bug")

    analyzer.finder.read_and_find = explode
    [broken] = run_task(analyzer, {"kind": "photos", "paths": photos[:1]}, sampling=Sampling(), smooth_s=0.5)["records"]
    assert broken["status"] == "error" and "fer failed on it (ValueError: a bug" in broken["error"]


def test_a_video_cut_into_segments_joins_back_into_one_pass(tmp_path):
    """Segments analysed apart (each also decoding a little before its own frames) give the frames, times and face
    ids of one pass; with the whole smoothing window decoded before each, the very same records."""
    from fercli.faces.analyzer import FaceAnalyzer
    from fercli.faces.media import Sampling
    from fercli.scale.tasks import join_segments, plan_tasks, run_task
    from test_video import write_video

    clip = str(write_video(tmp_path / "clip.mp4", frames=40))
    analyzer = FaceAnalyzer()

    def analysed(smooth_s: float, **cut) -> dict:
        tasks = plan_tasks([], [clip], **cut)
        parts = [run_task(analyzer, task, sampling=Sampling(every=2), smooth_s=smooth_s)["video"] for task in tasks]
        return {"tasks": len(tasks), **join_segments(parts)} if cut else {"tasks": 1, **parts[0]}

    def faces(video: dict) -> list:
        return [(f["frame"], f["time_s"], [(x["face_id"], x["box"], x["label"]) for x in f["faces"]]) for f in video["frames"]]

    whole = analysed(0.0)
    assert [f["frame"] for f in whole["frames"]] == list(range(0, 40, 2)) and whole["decoded"] == 40
    assert analysed(0.0, segment_s=1.0)["tasks"] == 1  # 40 frames: not more than two 1-s segments
    cut = analysed(0.0, segment_s=0.3, warm_s=0.2)  # segments of 8 frames, each decoding 5 before its own
    assert cut["tasks"] == 5 and faces(cut) == faces(whole) and cut["decoded"] == 40
    smoothed = analysed(0.5, segment_s=0.3, warm_s=2.0)  # the warm-up reaches the start: the same smoothing
    assert smoothed["frames"] == analysed(0.5)["frames"]


def test_ray_missing_or_unreachable_is_one_line(tmp_path):
    blocked = "import sys; sys.modules['ray'] = None; from fercli.cli import main; sys.argv[0] = 'fer'; main()"
    done = subprocess.run([sys.executable, "-c", blocked, "predict", str(EXAMPLES / "astronaut.jpg"), "--ray", "local"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and 'pip install "fercli[ray]"' in done.stderr and "Traceback" not in done.stderr
    pytest.importorskip("ray")
    nobody = fer("predict", EXAMPLES / "astronaut.jpg", "--ray", "127.0.0.1:1", cwd=tmp_path)
    assert nobody.returncode == 1 and "nothing answers there" in nobody.stderr
    assert len(nobody.stderr.strip().splitlines()) == 1
    piped = fer("predict", "-", "--ray", "local", cwd=tmp_path)
    assert piped.returncode == 1 and "standard input (-) is read on this machine only" in piped.stderr
    stream = fer("predict", "rtsp://127.0.0.1:1/live", "--ray", "local", cwd=tmp_path)
    assert stream.returncode == 1 and "is a live stream" in stream.stderr
    saving = fer("predict", EXAMPLES / "astronaut.jpg", "--ray", "local", "-o", tmp_path / "out", cwd=tmp_path)
    assert saving.returncode == 1 and "run those without --ray" in saving.stderr


# ------------------------------------------------------------------ on Ray


@pytest.mark.slow
def test_ray_local_gives_the_records_tables_and_run_folders_of_one_process(tmp_path):
    pytest.importorskip("ray")
    pq = pytest.importorskip("pyarrow.parquet")
    from test_video import write_video

    folder = photo_folder(tmp_path / "photos", copies=2)
    write_video(folder / "clip.mp4", frames=20)
    alone = fer("predict", folder, "--json", "--csv", tmp_path / "alone.csv", cwd=tmp_path)
    on_ray = fer("predict", folder, "--json", "--ray", "local", "--parquet", tmp_path / "ray.parquet", "--csv",
                 tmp_path / "ray.csv", "--segment", "0.25", cwd=tmp_path)  # the video in three segments, joined back
    assert alone.returncode == on_ray.returncode == 1, on_ray.stderr  # broken*.jpg cannot be read, either way
    assert "Traceback" not in on_ray.stderr and f"on {os.cpu_count()} workers" in on_ray.stderr
    photos = {p: r for p, r in by_path("\n".join(l for l in alone.stdout.splitlines() if '"frame"' not in l)).items()}
    assert_same_records(photos, by_path("\n".join(l for l in on_ray.stdout.splitlines() if '"frame"' not in l)))
    frames = lambda out: [(r["frame"], [(f["face_id"], f["label"]) for f in r["faces"]])  # noqa: E731
                          for r in map(json.loads, out.splitlines()) if "frame" in r]
    assert frames(alone.stdout) == frames(on_ray.stdout) and len(frames(on_ray.stdout)) == 20
    # The same rows either way, order aside; the Parquet file holds them too, one per face.
    key = lambda r: (r["file"], r["frame"], r["face"])  # noqa: E731
    rows_alone = sorted(csv.DictReader(open(tmp_path / "alone.csv")), key=key)
    rows_ray = sorted(csv.DictReader(open(tmp_path / "ray.csv")), key=key)
    assert [(r["file"], r["frame"], r["face"], r["label"]) for r in rows_alone] == \
           [(r["file"], r["frame"], r["face"], r["label"]) for r in rows_ray]
    table = pq.read_table(tmp_path / "ray.parquet").to_pylist()
    assert len(table) == len(rows_ray) and sum(r["file"].endswith("clip.mp4") for r in table) == 20
    faces = sum(len(r["faces"]) for r in photos.values())
    assert sum(r["face"] is not None and not r["file"].endswith(".mp4") for r in table) == faces == 6
    # The video's run folder, as without --ray: the same timeline, the same faces in its summary.
    runs = sorted((tmp_path / "runs" / "predict").iterdir())
    assert [r.name for r in runs] == ["clip", "clip-2"]
    assert (runs[0] / "timeline.csv").read_text() == (runs[1] / "timeline.csv").read_text()
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    assert summaries[0]["faces"] == summaries[1]["faces"] and summaries[1]["frames_decoded"] == 20
    assert (runs[1] / "timeline.png").is_file()


@pytest.mark.slow
def test_a_killed_worker_loses_nothing(tmp_path):
    """A Ray worker killed mid-run: Ray starts another and runs its task again; every input is recorded once, and a
    rerun with the same table finds nothing left to do."""
    pytest.importorskip("ray")
    folder = photo_folder(tmp_path / "photos", copies=24)  # 96 photos, 6 tasks
    sheet = tmp_path / "faces.csv"
    command = [sys.executable, "-m", "fercli", "predict", str(folder), "--ray", "local", "--workers", "2", "--csv", str(sheet)]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and run.poll() is None and time.monotonic() < deadline:
        if sheet.exists() and sheet.read_text().count("\n") > 1:  # a task has finished: the pool is at work
            workers = map_workers()
            if workers:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    _, stderr = run.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert run.returncode == 1 and "Traceback" not in stderr, stderr  # 1: the broken photos, nothing else
    files = [row["file"] for row in csv.DictReader(open(sheet))]
    assert len(set(files)) == 96
    assert sorted(set(files)) == sorted(str(p) for p in folder.iterdir())
    per_file = {name: files.count(name) for name in set(files)}
    assert {per_file[str(p)] for p in folder.glob("two_faces*")} == {2} and set(per_file.values()) == {1, 2}
    again = fer("predict", folder, "--ray", "local", "--csv", sheet, cwd=tmp_path)
    assert "holds 72 of these inputs" in again.stderr and "24 left" in again.stderr  # the unreadable are retried
    assert len(list(csv.DictReader(open(sheet)))) == len(files)


def map_workers() -> list[int]:
    """The processes of Ray Data's map actors (named ray::MapWorker... by Ray)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::MapWorker"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_a_two_node_cluster_on_this_machine(tmp_path):
    """`ray start --head` plus a second `ray start --address`, one core each: two workers need both nodes. The
    cluster asks for a token, as Ray's own clusters do since 2.60; every process here is given it, as a real
    cluster's nodes and drivers are."""
    import secrets

    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    try:
        head = subprocess.run([str(ray_cli), "start", "--head", "--port", str(port), "--include-dashboard", "false",
                               *common], capture_output=True, text=True, env=env, timeout=120)
        assert head.returncode == 0, head.stderr
        node = subprocess.run([str(ray_cli), "start", "--address", f"127.0.0.1:{port}", *common], capture_output=True,
                              text=True, env=env, timeout=120)
        assert node.returncode == 0, node.stderr
        folder = photo_folder(tmp_path / "photos", copies=8)  # 24 readable photos: two tasks
        alone = runner.invoke(app, ["predict", str(folder), "--json"])
        clustered = fer("predict", folder, "--json", "--ray", f"127.0.0.1:{port}", "--workers", "2", cwd=tmp_path,
                        env=env)
        assert clustered.returncode == 1 and "on 2 workers" in clustered.stderr, clustered.stderr
        assert_same_records(by_path(alone.stdout), by_path(clustered.stdout))
        nodes = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='auto', logging_level='ERROR'); "
                                "print(sum(n['Alive'] for n in ray.nodes()))"], capture_output=True, text=True, env=env)
        assert nodes.stdout.strip() == "2"
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, env=env, timeout=120)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_documented_columns_are_the_written_ones():
    """docs/scale.md's table of columns, in order, is what tables.py writes (one column per class in its place)."""
    import re

    from fercli.commands.tables import columns

    text = (Path(__file__).resolve().parents[1] / "docs" / "scale.md").read_text()
    table = text.split("| column | what it holds |", 1)[1].split("\n\n", 1)[0]
    documented = []
    for line in table.splitlines()[2:]:
        cell = line.split("|")[1]
        documented += ["<class>"] if "per class" in cell else re.findall(r"`(\w+)`", cell)
    assert documented == columns(("<class>",))


def test_progress_in_a_log_file_is_a_line_now_and_then(capsys):
    """Where stderr is no terminal (a cluster job's log), progress is a line: inputs done of all, faces/s, time left."""
    from fercli import console

    progress = console.BatchProgress("inputs", 10, every_s=0.0)
    progress.advance(4, 6)
    progress.close()
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("inputs: 4 of 10 inputs, ") and " faces/s, " in line and line.endswith(" min left")


def test_a_csv_torn_by_a_kill_loses_only_its_last_inputs(tmp_path):
    """A kill mid-write leaves a torn last line: that input, and the one read whole before it (whose rows may be cut
    short), are redone; the rest is kept as it was, and a whole file is appended to without being rewritten."""
    from fercli.commands.tables import CsvSink, photo_rows

    classes = ("happy", "sad")
    face = {"box": [1, 2, 3, 4], "label": "happy", "scores": {"happy": 0.9, "sad": 0.1}, "detector_score": 0.9,
            "landmarks": None}
    path = tmp_path / "faces.csv"
    sink = CsvSink(path, classes, overwrite=False)
    sink.drop_except(set())
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        sink.add(photo_rows({"path": name, "status": "ok", "size": [9, 9], "turned": 0, "faces": [face, face]}, classes))
    sink.file.close()
    whole = path.read_text()
    again = CsvSink(path, classes, overwrite=False)
    assert again.done == {"a.jpg", "b.jpg", "c.jpg"}
    again.drop_except(again.done)
    again.file.close()
    assert path.read_text() == whole
    path.write_text(whole[: whole.rindex("c.jpg") + 9])  # c.jpg's second row cut short
    torn = CsvSink(path, classes, overwrite=False)
    assert torn.done == {"a.jpg", "b.jpg"}
    torn.drop_except(torn.done)
    torn.file.close()
    assert [line.split(",")[0] for line in path.read_text().splitlines()[1:]] == ["a.jpg"] * 2 + ["b.jpg"] * 2
