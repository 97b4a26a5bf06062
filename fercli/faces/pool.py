"""The analyzers behind fer serve: one in the server's own process, or one in each of N worker processes (a bigger
machine serves more). Either way the server asks ``await pool.predict(data, name=..., orient=...)`` and gets the
record and the seconds the analysis itself took (not the wait for an analyzer: admission needs the pace of work)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from fastapi.concurrency import run_in_threadpool

from fercli.faces.analyzer import FaceAnalyzer


def model_facts(analyzer: FaceAnalyzer) -> dict:
    """What /v1/model says of an analyzer: its classes, the file's name (never its path), input and detector."""
    classifier = analyzer.classifier
    return {"classes": list(classifier.classes), "model": classifier.path.name, "runs_on": classifier.runs_on,
            "parameters": classifier.parameters, "input": classifier.preprocess.to_dict(),
            "detector": type(analyzer.detector).__name__.lower() if analyzer.detector else None,
            "detect_size": analyzer.detect_size}


class LocalPool:
    """One analyzer in this process, one request at a time (OpenCV's detector keeps per-call state)."""

    workers = 1

    def __init__(self, analyzer: FaceAnalyzer):
        self.analyzer, self.turn = analyzer, threading.Lock()
        self.facts = model_facts(analyzer)

    def _predict(self, data: bytes, name: str, orient: bool) -> tuple[dict, float]:
        with self.turn:
            return timed(self.analyzer, data, name, orient)

    async def predict(self, data: bytes, *, name: str, orient: bool) -> tuple[dict, float]:
        return await run_in_threadpool(self._predict, data, name, orient)

    def close(self) -> None:
        pass


_worker_analyzer: FaceAnalyzer | None = None


def _start_worker(options: dict, threads: int, parent: int) -> None:
    """In each worker process: a watch on the server (a server killed, or stopped by a signal uvicorn re-raises, runs
    no clean-up: its workers must not outlive it), its share of the cores, then its own analyzer."""
    global _worker_analyzer
    import cv2

    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    cv2.setNumThreads(threads)
    _worker_analyzer = FaceAnalyzer(**options, threads=threads)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _worker_facts() -> dict:
    return model_facts(_worker_analyzer)


def _worker_predict(data: bytes, name: str, orient: bool) -> tuple[dict, float]:
    return timed(_worker_analyzer, data, name, orient)


def timed(analyzer: FaceAnalyzer, data: bytes, name: str, orient: bool) -> tuple[dict, float]:
    start = time.perf_counter()
    record = analyzer.predict(data, name=name, orient=orient)
    return record, time.perf_counter() - start


class ProcessPool:
    """``workers`` processes, each holding a FaceAnalyzer built from ``options`` (FaceAnalyzer's keywords), each with
    the cores divided among them. Started (and their models loaded) before the server answers."""

    def __init__(self, options: dict, workers: int):
        threads = max(1, (os.cpu_count() or 1) // workers)
        # spawn, not fork: the server process runs threads (an event loop, onnxruntime's pools) a fork would copy mid-step
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_worker, initargs=(options, threads, os.getpid()))
        self.workers = workers
        warm = [self.executor.submit(_worker_facts) for _ in range(workers)]
        self.facts = warm[0].result()
        for future in warm[1:]:
            future.result()

    async def predict(self, data: bytes, *, name: str, orient: bool) -> tuple[dict, float]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _worker_predict, data, name, orient)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
