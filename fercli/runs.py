"""Run folders that never overwrite (runs/train/exp, exp-2, ...), the lock that says a run is training, and atomic
writes inside them."""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def check_run_name(name: str, project: str | Path) -> None:
    """A run name is one folder inside its project: "../x" or "a/b" would write elsewhere."""
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\")):
        from fercli.errors import InputError

        raise InputError(f"run name {name!r}: give a plain folder name (no / or ..); it is created inside {project}")


def new_run_dir(project: str | Path, name: str) -> Path:
    """Create and return ``project/name``, or ``name-2``, ``name-3``... if it exists."""
    check_run_name(name, project)
    base = Path(project).expanduser()
    base.mkdir(parents=True, exist_ok=True)
    candidate, n = base / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = base / f"{name}-{n}"


LOCK_NAME = "train.lock"


def hold_run(run_dir: Path):
    """Mark ``run_dir`` as being trained by this process: an exclusive lock on its train.lock, which the OS drops when
    the process ends, however it ends (Ctrl-C, kill -9, a crash). A second ``fer train`` on the same run would
    interleave two trainings' checkpoints, so it is refused. Returns the open lock file (close it when done), or
    None where the platform has no file locks."""
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(run_dir / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        from fercli.errors import InputError

        raise InputError(f"{run_dir}: another fer train (pid {holder}) is training this run; "
                         "wait for it to end or stop it first") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def run_is_held(run_dir: Path) -> bool | None:
    """True while a process trains the run, False when none does; None when it cannot be told (a run from before
    train.lock existed, or no file locks on this platform)."""
    lock = run_dir / LOCK_NAME
    try:
        import fcntl
    except ImportError:
        return None
    try:
        with open(lock) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except OSError:  # none there, or not ours to read
        return None
    return False


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` next to ``path``, then rename: a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:  # a full disk or Ctrl-C mid-write: leave neither half a file nor the temporary
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename == str(tmp):  # name the file the user asked for
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        if isinstance(exc, RuntimeError) and is_write_failure(exc):
            # torch.save reports a full disk as a RuntimeError of its zip writer ("unexpected pos", "failed writing"):
            # an OSError of the file asked for, so it is said in one line like any other write that failed.
            raise OSError(errno.ENOSPC if disk_is_full(path.parent) else errno.EIO,
                          os.strerror(errno.ENOSPC if disk_is_full(path.parent) else errno.EIO), str(path)) from None
        raise


def is_write_failure(exc: RuntimeError) -> bool:
    text = str(exc)
    return "unexpected pos" in text or "failed writing" in text or "file write failed" in text


def disk_is_full(folder: Path, margin: int = 16 * 1024 * 1024) -> bool:
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def write_text_atomic(text: str, path: Path) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_image_atomic(image, path: Path) -> None:
    """A BGR array as a PNG or JPEG (by ``path``'s suffix), atomically."""
    import cv2

    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    write_atomic(path, lambda tmp: tmp.write_bytes(encoded.tobytes()))


def write_metrics_csv(rows: list[dict], path: Path) -> None:
    """Rewrite the whole table each epoch, atomically: a kill never leaves a half row."""
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(buffer.getvalue(), path)


def refuse_overwrite(path: Path, overwrite: bool) -> None:
    from fercli.errors import InputError

    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another path or pass --overwrite")


def new_file_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix``... whichever does not exist yet."""
    candidate, n = folder / f"{stem}{suffix}", 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate
