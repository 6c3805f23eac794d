"""deploy.chaos.runner with a fake SupervisorClient: the fault loop strikes the
planned targets in order, resolves etcd-leader when it fires, undoes timed
faults, records failures without stopping; the etcd refusal."""
from __future__ import annotations

import dataclasses
import io

import pytest

from deploy.chaos import runner
from deploy.chaos.scenario import parse
from kubemu import cluster_home


@dataclasses.dataclass
class Info:
    name: str
    component: str
    node: str = ""
    address: str = ""


class FakeSupervisor:
    def __init__(self, leader: str | None = "etcd-1", fail: tuple[str, ...] = ()):
        self.calls: list[tuple[str, str]] = []
        self.leader = leader
        self.fail = fail
        self.closed = False

    async def status(self):
        return [Info("etcd-0", "etcd"), Info("etcd-1", "etcd"), Info("apiserver-0", "apiserver"),
                Info("node-0/kubelet", "kubelet", "node-0")]

    async def etcd_leader(self):
        return self.leader

    def _do(self, verb, names):
        for name in names:
            self.calls.append((verb, name))
            if (verb, name) in [tuple(f.split(" ")) for f in self.fail]:
                raise RuntimeError(f"{verb} {name}: refused")

    async def kill(self, names, **_):
        self._do("kill", names)

    async def pause(self, names, **_):
        self._do("pause", names)

    async def resume(self, names):
        self._do("resume", names)

    async def stop(self, names):
        self._do("stop", names)

    async def start(self, names):
        self._do("start", names)

    async def partition(self, names, **_):
        self._do("partition", names)

    async def heal(self, names=None):
        self._do("heal", names)

    async def close(self):
        self.closed = True


def make_runner(text: str, home=None) -> tuple[runner.Runner, FakeSupervisor]:
    fake = FakeSupervisor(fail=("kill apiserver-0",))
    options = runner.Options(parse(text), seed=1, home=home, out=io.StringIO())
    return runner.Runner(options, lambda _home: fake), fake


async def test_the_fault_loop_strikes_in_order_resolves_the_leader_and_undoes():
    text = ("duration: 300ms\ntimeline: [{at: 10ms, action: pause, target: node-0/kubelet, "
            "for: 100ms}, {at: 20ms, action: kill, target: etcd-leader}, {at: 30ms, action: kill, "
            "target: apiserver-0}, {at: 40ms, action: partition, target: etcd-0, for: 150ms}]")
    r, fake = make_runner(text)
    infos = await fake.status()
    from deploy.chaos import schedule
    events = schedule.timeline(r.scenario, 1, [schedule.Process(i.name, i.node, i.component)
                                               for i in infos])
    report = runner.Report("t", 1, "home", timeline=[runner.FaultOutcome(e) for e in events])
    await r._faults(fake, report, t0=__import__("time").monotonic())
    assert fake.calls == [("pause", "node-0/kubelet"), ("kill", "etcd-1"), ("kill", "apiserver-0"),
                          ("partition", "etcd-0"), ("resume", "node-0/kubelet"), ("heal", "etcd-0")]
    by_target = {o.target: o for o in report.timeline}
    assert by_target["etcd-1"].event.target == "etcd-leader"
    assert by_target["apiserver-0"].error == "RuntimeError: kill apiserver-0: refused"
    assert by_target["node-0/kubelet"].undone_at_s >= by_target["node-0/kubelet"].fired_at_s
    assert "etcd-1" in r.out.getvalue()


async def test_an_affected_etcd_is_not_killed_without_the_override(tmp_path):
    cluster_home.write_state(tmp_path, cluster_home.State(home=str(tmp_path), state="ready",
                                                          etcd_version="3.5.1"))
    r, fake = make_runner("duration: 5s\ntimeline: [{at: 1s, action: kill, target: etcd-0}]",
                          home=tmp_path)
    with pytest.raises(runner.ChaosRefused, match=r"refusing to kill etcd \(etcd-0 at 1s, 1 such "
                                                  r"faults\): etcd 3.5.1 has the 3.5.0-3.5.2"):
        await r.run()
    assert fake.calls == [] and fake.closed


def test_the_report_text_shows_timeline_availability_and_verdict():
    from deploy.chaos import invariants as inv
    from deploy.chaos.schedule import FaultEvent
    from deploy.chaos.workloads import Availability

    a = Availability("writer", 0.0)
    a.seconds = {0: [5, 0], 1: [0, 5], 3: [2, 1]}
    outcome = runner.FaultOutcome(FaultEvent(2.0, "kill", "etcd-0", 0.0, "faults[0]", "any"),
                                  fired_at_s=2.01, target="etcd-0")
    report = runner.Report("s", 3, "/h", timeline=[outcome], availability=[a],
                           converged_after_s=4.5,
                           invariants=[inv.Invariant("x", False, "1 bad", ("detail",))])
    text = report.text()
    assert "etcd-0 (any)" in text and "    0s:     5   0/5     -   2/1" in text
    assert "writer: 7 ok, 6 errors (46.2%), longest outage 0s, longest gap between successes 0s" \
        in text
    assert "converged 4.5s after the last fault ended" in text
    assert "FAIL  x: 1 bad\n        detail" in text and text.endswith("FAILED")
    assert report.to_dict()["passed"] is False


async def test_a_watch_outage_runs_from_the_last_event_before_the_break():
    """The watcher's longest outage is the gap in delivery (last event before
    a broken stream -> first event after), not the healthy stream's life: it
    used to count an ok only at a stream's first event, and reported a 14 s
    outage for a break of a fraction of a second."""
    import asyncio
    from types import SimpleNamespace

    from deploy.chaos.workloads import Watcher

    clock = [0.0]
    stop = asyncio.Event()

    def event(seq: int):
        return SimpleNamespace(type="MODIFIED", object=SimpleNamespace(
            metadata=SimpleNamespace(name="writer-0", resource_version=str(100 + seq)),
            data={"seq": str(seq)}))

    async def first_stream():
        for t in range(1, 11):          # an event a second for 10 s, then a break
            clock[0] = float(t)
            yield event(t)
        clock[0] = 10.5
        raise OSError("connection reset")

    async def second_stream():
        clock[0] = 12.0
        yield event(11)
        stop.set()
        await asyncio.Event().wait()

    streams = [first_stream(), second_stream()]

    class FakeClient:
        async def list(self, *args, **kwargs):
            return SimpleNamespace(items=[], resource_version="100")

        def watch(self, *args, **kwargs):
            return streams.pop(0)

    watcher = Watcher(FakeClient(), "ns", "writer", 0.0)
    watcher.availability.clock = lambda: clock[0]
    await asyncio.wait_for(watcher.run(stop), 10)
    assert watcher.availability.longest_outage_s() == 2.0, watcher.availability.to_dict()
    assert watcher.availability.longest_gap_s() == 2.0
    assert [seq for seq, _ in watcher.records["writer-0"].seen] == list(range(1, 12))


def test_the_longest_gap_counts_calls_that_hang_as_well_as_failures():
    from deploy.chaos.workloads import Availability

    clock = [0.0]
    a = Availability("writer", 0.0, clock=lambda: clock[0])
    for t, ok in [(0.1, True), (0.2, True), (1.7, True),     # a call held 1.5 s, no error
                  (2.0, False), (2.5, True)]:                # a failure, 0.8 s without success
        clock[0] = t
        a.record(ok)
    assert a.longest_gap_s() == 1.5 and a.longest_outage_s() == 0.8
    assert a.to_dict()["longest_gap_s"] == 1.5
