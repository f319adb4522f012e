"""Where the machine's CPU went during a phase: the product's workers, each sandbox, Redis, this
process, and the machine as a whole. Tells a CPU-bound run (the machine busy, the budget not drawn
down) from a budget-bound one, and how much of the CPU the simulated servers took."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil


def _tree_cpu_s(pid: int) -> float:
    """User + system seconds of a process, its live descendants and the children it has reaped; a
    negative pid: that process alone (the bench's children are the fleet, counted in their groups)."""
    try:
        main = psutil.Process(abs(pid))
        if pid < 0:
            t = main.cpu_times()
            return float(t.user + t.system)
        procs = [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def redis_pids(port: int = 6379) -> list[int]:
    out = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if (proc.info.get("name") or "").startswith("redis-server") and f":{port}" in cmd:
            out.append(proc.pid)
    return out


@dataclass
class CpuMeter:
    """CPU seconds per group between `start()` and `stop()`; groups: name -> root pids (see `_tree_cpu_s`)."""

    groups: dict[str, list[int]]
    start_s: dict[str, float] = field(default_factory=dict)
    result: dict[str, float] = field(default_factory=dict)
    _busy0: float = 0.0
    _wall0: float = 0.0

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(sum(t)) - t.idle - getattr(t, "iowait", 0.0)

    def _sample(self) -> dict[str, float]:
        return {name: sum(_tree_cpu_s(p) for p in pids) for name, pids in self.groups.items()}

    def start(self) -> CpuMeter:
        self.start_s = self._sample()
        self._busy0, self._wall0 = self._busy(), time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        end = self._sample()
        wall = time.monotonic() - self._wall0
        self.result = {name: round(end[name] - self.start_s.get(name, 0.0), 1) for name in end}
        busy = self._busy() - self._busy0
        self.result["machine_busy"] = round(busy, 1)
        self.result["machine_capacity"] = round(wall * (psutil.cpu_count() or 1), 1)
        self.result["machine_busy_fraction"] = round(busy / self.result["machine_capacity"], 3) if wall else 0.0
        return self.result
