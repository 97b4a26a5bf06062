"""``fer predict --ray``: the tasks of scale.tasks on a Ray Data actor pool, each actor holding one FaceAnalyzer (the
batch-inference pattern of Ray's documentation: a stateful class in ``map_batches`` over an ``ActorPoolStrategy``).

Ray restarts an actor whose process dies and runs its task again (``max_restarts`` and ``max_task_retries`` are
unlimited for actor pools), so a lost worker costs its current task, not the run. Inputs are read by the actors:
on a cluster they must be at the same path on every node (a shared file system) or be http(s) addresses. The model
travels with the tasks (a file of your own is sent to each actor), so it need not be on the nodes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fercli.errors import InputError
from fercli.faces.media import Sampling
from fercli.scale.tasks import run_task

INSTALL_RAY = 'pip install "fercli[ray]"'
MAX_BLOCKS = 20_000  # Ray Data's unit of loss and retry: a task per block up to here, then several
MODEL_BYTES = 512 * 2**20


def connect(address: str) -> None:
    """Start a local Ray instance ("local", this machine's cores) or join a running cluster ("auto": the one
    ``ray start`` made here, or an address such as 10.0.0.5:6379 or ray://head:10001)."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--ray needs Ray, an optional extra: {INSTALL_RAY}") from None
    # Ray Data's actors log an error-level line about their own arguments at every start (ray-project/ray#53727), in
    # the C++ core, which no Python logger reaches: its log level is an environment variable (info shows everything).
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
             "configure_logging": True}
    if address not in ("local", "auto"):
        reachable(address)
    try:
        with stderr_silenced():  # the core's line saying it read that variable
            if address == "local":
                ray.init(num_cpus=os.cpu_count() or 1, **quiet)
            else:
                ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if address == "local":
            raise InputError(f"--ray local: could not start Ray on this machine ({first})") from None
        # Ray says only "Failed to connect" when the cluster wants a token it was not given.
        raise InputError(f"--ray {address}: could not join the Ray cluster there ({first}); a cluster started by Ray "
                         "2.60 or later also wants its token (RAY_AUTH_TOKEN, or ~/.ray/auth_token), and this "
                         "machine's Ray must be the cluster's version; `ray start --head` starts one") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # fer draws its own: inputs, faces/s, time left
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def reachable(address: str, timeout_s: float = 5.0) -> None:
    """A cluster's address answers, or one line saying so (Ray itself keeps trying for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address}: give local, auto, or a cluster's HOST:PORT (ray://HOST:PORT for Ray Client)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InputError(f"--ray {address}: nothing answers there ({exc.strerror or exc}); is the cluster up "
                         "(`ray status` on its head node)? Or use --ray local") from None


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a while (C++ code writes there directly); Ray's failures still raise."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def disconnect() -> None:
    import ray

    ray.shutdown()  # leaves a cluster running; stops the instance --ray local started


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def model_payload(model: str | Path | None) -> tuple[str, bytes] | None:
    """A model file of the user's own, to send to the actors (the shipped ones are in every node's install)."""
    if model is None or not Path(model).is_file():
        return None
    size = Path(model).stat().st_size
    if size > MODEL_BYTES:
        raise InputError(f"--checkpoint {model}: {size / 2**20:.0f} MB is too big to send to the workers (at most "
                         f"{MODEL_BYTES // 2**20} MB)")
    return Path(model).name, Path(model).read_bytes()


class Worker:
    """One actor: a FaceAnalyzer on one core (OpenCV and onnxruntime each on one thread, so N actors fill N cores)."""

    def __init__(self, options: dict, payload: tuple[str, bytes] | None, sampling: tuple[float, int], smooth_s: float):
        import cv2

        from fercli.faces.analyzer import FaceAnalyzer

        cv2.setNumThreads(1)
        if payload is not None:
            self.folder = tempfile.TemporaryDirectory(prefix="fer-model-")
            model = Path(self.folder.name) / payload[0]
            model.write_bytes(payload[1])
            options = {**options, "model": str(model)}
        self.analyzer = FaceAnalyzer(**options, threads=1)
        self.sampling, self.smooth_s = Sampling(fps=sampling[0], every=sampling[1]), smooth_s

    def __call__(self, batch: dict) -> dict:
        results = [json.dumps(run_task(self.analyzer, json.loads(task), sampling=self.sampling, smooth_s=self.smooth_s))
                   for task in batch["task"]]
        return {"result": results}


def run_tasks(tasks: list[dict], *, options: dict, sampling: Sampling, smooth_s: float, workers: int) -> Iterator[dict]:
    """Each task's result as it finishes (in no set order), from ``workers`` actors."""
    import ray

    payload = model_payload(options.get("model"))
    items = [{"task": json.dumps(task)} for task in tasks]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), MAX_BLOCKS)))
    results = dataset.map_batches(Worker, batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=workers),
                                  fn_constructor_kwargs={"options": options, "payload": payload,
                                                         "sampling": (sampling.fps, sampling.every), "smooth_s": smooth_s})
    for row in results.iter_rows():
        yield json.loads(row["result"])
