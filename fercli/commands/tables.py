"""``fer predict --csv FILE`` and ``--parquet FILE``: one row per face, of photos and of videos' analysed frames, added
as inputs finish; a rerun with the same file skips the inputs it already holds (an archive's run can stop and go on).

Columns (both formats, in this order; docs/scale.md says the same, checked by a test):
    file                  the input as given (a path, folder member or address)
    status                ok | no_face | error
    frame, time_s         videos: the analysed frame's index and time; empty for photos
    face                  photos: the face's number (1, 2, ...); videos: its face_id, the same across frames
    x, y, w, h            the face's box in the photo or frame, in pixels
    detector_score        YuNet's score (empty for Haar and --no-detect)
    label                 the most likely expression (videos: of the smoothed probabilities)
    <class>, ...          each class's probability (videos: smoothed, as in timeline.csv)
    turned                photos: degrees the photo was turned to find its faces upright
    faces_under_min_face  faces found under --min-face, left out
    error                 why the input could not be read
A photo or video without a face, or unreadable, has one row with the face columns empty. A video's rows are added
when the whole video is done, so a rerun never takes half a video for done; inputs that could not be read are tried
again.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import shutil
import time
from pathlib import Path

from fercli import console
from fercli.errors import InputError
from fercli.runs import write_atomic

FIRST = ["file", "status", "frame", "time_s", "face", "x", "y", "w", "h", "detector_score", "label"]
LAST = ["turned", "faces_under_min_face", "error"]
INTEGERS = {"frame", "face", "x", "y", "w", "h", "turned", "faces_under_min_face"}
PARQUET_FLUSH_S = 30.0  # a stopped run redoes at most this much work
PARQUET_FLUSH_ROWS = 20_000
INSTALL_PYARROW = 'pip install "fercli[ray]" (or pip install pyarrow)'


def columns(classes: tuple[str, ...]) -> list[str]:
    return [*FIRST, *classes, *LAST]


def photo_rows(record: dict, classes: tuple[str, ...]) -> list[dict]:
    """A photo's record (``fer predict --json``'s) -> its rows."""
    common = {"file": record["path"], "status": record["status"], "turned": record.get("turned", 0),
              "faces_under_min_face": record.get("faces_under_min_face", 0), "error": record.get("error", "")}
    rows = [{**common, **face_columns(number, face, classes)} for number, face in enumerate(record["faces"], start=1)]
    return rows or [common]


def video_rows(path: str, frames: list[dict], classes: tuple[str, ...], error: str = "") -> list[dict]:
    """A finished video's analysed frames (``FrameResult.to_json`` records) -> its rows; one row when it showed no face
    or could not be read."""
    rows = []
    for frame in frames:
        for face in frame["faces"]:
            rows.append({"file": path, "status": "ok", "frame": frame["frame"], "time_s": frame["time_s"],
                         **face_columns(face["face_id"], face, classes), "turned": 0,
                         "faces_under_min_face": frame.get("faces_under_min_face", 0), "error": ""})
    return rows or [{"file": path, "status": "error" if error else "no_face", "turned": 0, "faces_under_min_face": 0,
                     "error": error}]


def face_columns(number: int, face: dict, classes: tuple[str, ...]) -> dict:
    x, y, w, h = face["box"]
    return {"face": number, "x": x, "y": y, "w": w, "h": h, "detector_score": face.get("detector_score"),
            "label": face["label"], **{c: face["scores"][c] for c in classes}}


class Tables:
    """The --csv and --parquet files of one run (either, both or neither): ``done`` holds the inputs they had before
    (kept, and skipped by the caller); ``add(rows)`` appends one finished input's rows; ``close()`` completes them."""

    def __init__(self, *, csv_path: Path | None, parquet_path: Path | None, classes: tuple[str, ...], overwrite: bool,
                 settings: dict):
        self.sinks = [sink for sink in (CsvSink(csv_path, classes, overwrite) if csv_path else None,
                                        ParquetSink(parquet_path, classes, overwrite, settings) if parquet_path else None)
                      if sink is not None]
        new = [sink for sink in self.sinks if not sink.has_rows]
        if new and len(new) < len(self.sinks):  # the old file's rows would be dropped to match an empty new one
            old = next(sink for sink in self.sinks if sink.has_rows)
            raise InputError(f"{new[0].path} is new, but {old.path} holds results from before: give the files that "
                             "run wrote (both), or --overwrite to start them afresh")
        # An input is done only when every file holds it: a run stopped between the two writes redoes it in both.
        done = [sink.done for sink in self.sinks]
        self.done: set[str] = set.intersection(*done) if done else set()
        for sink in self.sinks:
            sink.drop_except(self.done)

    def add(self, rows: list[dict]) -> None:
        for sink in self.sinks:
            sink.add(rows)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class CsvSink:
    def __init__(self, path: Path, classes: tuple[str, ...], overwrite: bool):
        if path.suffix.lower() != ".csv":
            raise InputError(f"--csv {path}: give a file name ending in .csv")
        self.path, self.columns = path, columns(classes)
        self.status: dict[str, str] = {}  # input -> its status, for the rows the file holds
        self.whole = True  # the file ends with a whole line
        self.fresh = overwrite or not path.exists()  # a new table: written from its header
        if not self.fresh:
            self.status, self.whole = self.read_before()
        # Inputs that could not be read are tried again (an address may answer now): their rows go.
        self.done = {name for name, status in self.status.items() if status != "error"}
        self.has_rows = bool(self.status)
        self.file = None

    def read_before(self) -> tuple[dict[str, str], bool]:
        """What the file a stopped run left holds, input by input, read as a stream (an archive's table can be big).
        A torn end (a kill mid-write) also costs the last input read whole, whose rows may be torn off there."""
        with open(self.path, "rb") as handle:
            handle.seek(max(0, self.path.stat().st_size - 1))
            whole = handle.read(1) in (b"\n", b"")
        status: dict[str, str] = {}
        last = None
        with open(self.path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            if next(reader, None) != self.columns:
                raise InputError(f"--csv {self.path}: exists and is not a table of this fer model's (its columns "
                                 "differ); give another file name, or --overwrite to replace it")
            for row in reader:
                if len(row) == len(self.columns):
                    status.setdefault(row[0], row[1])
                    last = row[0]
        if not whole and last is not None:
            status.pop(last)
        return status, whole

    def drop_except(self, keep: set[str]) -> None:
        """Keep the rows of ``keep`` only (rewriting the file when others are there), then append to it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fresh or not self.whole or not set(self.status) <= keep:
            write_atomic(self.path, lambda tmp: self.copy_rows(tmp, keep))
        self.file = open(self.path, "a", newline="", encoding="utf-8")

    def copy_rows(self, tmp: Path, keep: set[str]) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(self.columns)
            if not self.status:
                return
            with open(self.path, newline="", encoding="utf-8", errors="replace") as handle:
                reader = csv.reader(handle)
                next(reader, None)
                writer.writerows(row for row in reader if len(row) == len(self.columns) and row[0] in keep)

    def add(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([["" if row.get(c) is None else row.get(c, "") for c in self.columns] for row in rows])
        self.file.write(buffer.getvalue())  # one input's rows in one write: a kill leaves whole inputs (or a torn line)
        self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            console.info(f"saved {self.path}")


class ParquetSink:
    """Rows gather in ``FILE.parts/`` (a part file every PARQUET_FLUSH_S seconds, each written whole), and become
    ``FILE`` when the run ends; a run stopped before that leaves the parts, which the rerun keeps and adds to."""

    def __init__(self, path: Path, classes: tuple[str, ...], overwrite: bool, settings: dict):
        if importlib.util.find_spec("pyarrow") is None:
            raise InputError(f"--parquet needs pyarrow: {INSTALL_PYARROW}")
        if path.suffix.lower() != ".parquet":
            raise InputError(f"--parquet {path}: give a file name ending in .parquet")
        self.path, self.classes, self.settings = path, classes, settings
        self.parts = path.with_name(path.name + ".parts")
        self.keep_file = not overwrite  # --overwrite: the file there now is replaced at the end, not added to
        if overwrite:
            shutil.rmtree(self.parts, ignore_errors=True)
        self.before = [] if overwrite else [p for p in [path, *sorted(self.parts.glob("*.parquet"))] if p.is_file()]
        self.done, self.has_rows = set(), bool(self.before)
        for part in self.before:
            self.done |= self.inputs_of(part)
        self.pending: list[dict] = []
        self.last_flush, self.written = time.monotonic(), len(list(self.parts.glob("*.parquet")))

    def inputs_of(self, part: Path) -> set[str]:
        import pyarrow.parquet as pq

        try:
            meta = pq.read_schema(part).metadata or {}
            table = pq.read_table(part, columns=["file", "status"])
        except Exception as exc:  # noqa: BLE001 (pyarrow raises several kinds for a file that is not Parquet)
            raise InputError(f"--parquet {self.path}: {part} is not a Parquet file fer can read ({exc}); give another "
                             "file name, or --overwrite to start it afresh") from None
        theirs = json.loads(meta.get(b"fer", b"{}"))
        if theirs != self.settings:
            differ = sorted(k for k in {*theirs, *self.settings} if theirs.get(k) != self.settings.get(k))
            raise InputError(f"--parquet {self.path}: {part.name} was made with other settings ({', '.join(differ)}); "
                             "give another file name, or --overwrite to start it afresh")
        return {name for name, status in zip(table.column("file").to_pylist(), table.column("status").to_pylist())
                if status != "error"}

    def drop_except(self, keep: set[str]) -> None:
        import pyarrow.parquet as pq

        self.parts.mkdir(parents=True, exist_ok=True)
        for part in self.before:  # rows of inputs not done in the --csv too are dropped, to be redone
            table = pq.read_table(part)
            if not set(table.column("file").to_pylist()) <= keep:
                import pyarrow.compute as pc

                table = table.filter(pc.is_in(table.column("file"), value_set=pyarrow_strings(keep)))
                write_atomic(part, lambda tmp, t=table: pq.write_table(t, tmp))

    def add(self, rows: list[dict]) -> None:
        self.pending += rows
        if len(self.pending) >= PARQUET_FLUSH_ROWS or time.monotonic() - self.last_flush >= PARQUET_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        import pyarrow.parquet as pq

        if self.pending:
            table = self.table(self.pending)
            self.written += 1
            part = self.parts / f"part-{os.getpid()}-{self.written:05d}.parquet"
            write_atomic(part, lambda tmp: pq.write_table(table, tmp))
            self.pending = []
        self.last_flush = time.monotonic()

    def schema(self):
        import pyarrow as pa

        fields = [pa.field(c, pa.int64() if c in INTEGERS else pa.float64() if c in ("time_s", "detector_score")
                           else pa.string()) for c in [*FIRST, *LAST]]
        fields += [pa.field(c, pa.float64()) for c in self.classes]
        order = {c: i for i, c in enumerate(columns(self.classes))}
        return pa.schema(sorted(fields, key=lambda f: order[f.name]), metadata={"fer": json.dumps(self.settings)})

    def table(self, rows: list[dict]):
        import pyarrow as pa

        schema = self.schema()
        return pa.table({f.name: pa.array([row.get(f.name) for row in rows], type=f.type) for f in schema}, schema=schema)

    def close(self) -> None:
        """Every part and the file before -> FILE, whole; then the parts go."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.flush()
        pieces = [self.path] * (self.keep_file and self.path.is_file()) + sorted(self.parts.glob("*.parquet"))
        tables = [pq.read_table(p, schema=self.schema()) for p in pieces] or [self.table([])]
        whole = pa.concat_tables(tables)
        write_atomic(self.path, lambda tmp: pq.write_table(whole, tmp))
        shutil.rmtree(self.parts, ignore_errors=True)
        console.info(f"saved {self.path} ({whole.num_rows} rows)")


def pyarrow_strings(values: set[str]):
    import pyarrow as pa

    return pa.array(sorted(values), type=pa.string())
