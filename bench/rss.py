"""Peak resident memory of worker processes (each Celery worker and its prefork children), sampled."""

from __future__ import annotations

import threading

import psutil


class RssSampler:
    def __init__(self, workers: dict[str, int], interval_s: float = 0.5) -> None:
        self.workers = workers  # name -> pid of the worker's main process
        self.interval_s = interval_s
        self.peak_mb: dict[str, float] = dict.fromkeys(workers, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        for name, pid in self.workers.items():
            try:
                main = psutil.Process(pid)
                procs = [main, *main.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                try:
                    rss = proc.memory_info().rss / 1e6
                except psutil.NoSuchProcess:
                    continue
                # Per process, not summed: each process is what an OOM limit or a container sees.
                self.peak_mb[name] = max(self.peak_mb[name], rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
