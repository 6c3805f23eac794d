"""A CPU limit without a cpu cgroup: stop and continue the container on a duty
cycle, driven by its measured CPU time (a token bucket, as CFS bandwidth
control is one).

Each monitor sample adds `limit_cores * elapsed` CPU-seconds of budget and
takes away what the container used since the last sample. While the balance
is negative the container is stopped (SIGSTOP to its process group and the
processes seen in its tree); it is continued (SIGCONT) once the balance is
back to zero or more. Bounds: the balance is at most `burst_s` (a container
idle for long gets no more than that at once) and at least
`-limit_cores * stop_s_max` (no stop lasts longer than `stop_s_max`, however
much it used in one sample).

The precision is the sampling period: a busy loop runs for about one period,
then stays stopped until its budget is back; the average over a few seconds
is the limit. The runtime continues every throttled container when it stops
one, when it stops itself, and when it starts (a runtime killed while a
container was stopped).
"""
from __future__ import annotations

import dataclasses

BURST_PERIODS = 2        # budget a container may save up, in sampling periods
STOP_S_MAX = 5.0


@dataclasses.dataclass
class DutyCycle:
    limit_cores: float
    period_s: float                  # the sampling period
    stop_s_max: float = STOP_S_MAX
    balance_s: float = 0.0
    stopped: bool = False
    last_s: float | None = None      # monotonic time of the last sample
    last_cpu_ns: int = 0

    def step(self, now_s: float, cpu_ns: int) -> bool:
        """Account one sample; whether the container should be stopped now."""
        if self.last_s is None or now_s <= self.last_s:
            self.last_s, self.last_cpu_ns = now_s, cpu_ns
            return self.stopped
        elapsed_s = now_s - self.last_s
        used_s = max(0, cpu_ns - self.last_cpu_ns) / 1e9
        self.last_s, self.last_cpu_ns = now_s, cpu_ns
        burst_s = self.limit_cores * self.period_s * BURST_PERIODS
        floor_s = -self.limit_cores * self.stop_s_max
        self.balance_s = min(burst_s, max(floor_s, self.balance_s
                                          + self.limit_cores * elapsed_s - used_s))
        self.stopped = self.balance_s < 0
        return self.stopped
