"""The benchmark's CPU accounting (bench/cpu.py): a busy child process's CPU lands in its group,
an idle one's does not, and a negative pid leaves the children out."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.cpu import CpuMeter


def test_cpu_lands_in_the_group_of_the_process_that_burned_it() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        meter = CpuMeter({"busy": [], "idle": [idle.pid], "me_alone": [-os.getpid()]}).start()
        busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                                 "while time.process_time() - t < 0.6: pass\ntime.sleep(30)"])
        meter.groups["busy"] = [busy.pid]
        meter.start_s["busy"] = 0.0  # started after the meter: all of its CPU is in the window
        try:
            import time

            time.sleep(1.5)
            out = meter.stop()
        finally:
            busy.kill()
            busy.wait()
    finally:
        idle.kill()
        idle.wait()
    assert out["busy"] >= 0.5  # its own spin (and interpreter start-up)
    assert out["idle"] < 0.2
    assert out["me_alone"] < 0.3  # the children's CPU is not ours
    assert 0 < out["machine_busy_fraction"] <= 1.0 and out["machine_capacity"] > 0
