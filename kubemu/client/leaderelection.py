"""Leader election on a coordination.k8s.io/v1 Lease, like client-go's.

- Acquire: create the Lease, or take it over once the holder's renewTime +
  leaseDurationSeconds has passed (or the holder released it: holderIdentity
  ""), incrementing leaseTransitions. Every write is an update carrying the
  resourceVersion just read, so two candidates cannot both win a round.
- Lead: call `on_started_leading()` in a task and renew every retry_period_s.
  Step down when renewals keep failing for renew_deadline_s or when another
  holder is seen: cancel the leading task, then call `on_stopped_leading()`.
- Graceful stop (run() cancelled, or on_started_leading returned): release the
  Lease (clear holderIdentity) so a standby takes over at once instead of
  waiting out the lease.

The decision (given the Lease, now and who we are: create, renew, take over or
wait) is the pure function `decide`, tested table-driven. Times in the Lease
are RFC 3339 UTC strings with microseconds, taken from `clock` (wall-clock
seconds, injectable); renew deadlines are measured on the event loop's clock.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import math
import random
import time
from typing import Any, Awaitable, Callable

import structlog
from google.protobuf.message import Message

from kubemu import timefmt
from kubemu.api import errors
from kubemu.client.clientset import Client

log = structlog.get_logger("kubemu.leaderelection")

LEASES = "leases"
LEASE_API_VERSION = "coordination.k8s.io/v1"
LEASE_KIND = "Lease"

CREATE = "create"
RENEW = "renew"
ACQUIRE = "acquire"
WAIT = "wait"

# Acquire attempts are spread over retry_period_s * (1 .. 1 + _JITTER) so that
# standbys do not hit the apiserver in lockstep.
_JITTER = 0.2


# ---------------------------------------------------------------- pure part

format_time = timefmt.rfc3339_micro  # Lease times are MicroTime


def parse_time(text: str) -> float | None:
    """Seconds since the epoch, or None when `text` is empty or not RFC 3339."""
    if not text:
        return None
    try:
        return timefmt.parse_rfc3339(text)
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """The Lease spec fields leader election reads and writes."""

    holder_identity: str = ""
    lease_duration_s: int | None = None
    acquire_time: str = ""
    renew_time: str = ""
    lease_transitions: int = 0


@dataclasses.dataclass(frozen=True)
class Decision:
    action: str  # CREATE, RENEW, ACQUIRE or WAIT
    record: LeaseRecord | None  # what to write; None for WAIT
    reason: str


def lease_expiry(record: LeaseRecord, default_duration_s: float) -> float | None:
    """When the holder's claim runs out, or None when it never validly started."""
    renewed = parse_time(record.renew_time)
    if renewed is None:
        return None
    duration_s = record.lease_duration_s
    if duration_s is None or duration_s <= 0:
        duration_s = default_duration_s
    return renewed + duration_s


def decide(current: LeaseRecord | None, *, now: float, identity: str,
           lease_duration_s: float) -> Decision:
    """What `identity` should do with the Lease as it stands at `now`."""
    stamp = format_time(now)
    duration = _duration_field(lease_duration_s)
    if current is None:
        return Decision(CREATE, LeaseRecord(identity, duration, stamp, stamp, 0),
                        "no lease yet")
    if current.holder_identity == identity:
        return Decision(RENEW, LeaseRecord(
            identity, duration, current.acquire_time or stamp, stamp,
            current.lease_transitions), "we hold it")
    if current.holder_identity:
        expiry = lease_expiry(current, lease_duration_s)
        # Valid while expiry is after now (client-go's isLeaseValid).
        if expiry is not None and expiry > now:
            return Decision(WAIT, None,
                            f"held by {current.holder_identity} until {format_time(expiry)}")
        reason = f"{current.holder_identity}'s lease expired"
    else:
        reason = "released"
    return Decision(ACQUIRE, LeaseRecord(
        identity, duration, stamp, stamp, current.lease_transitions + 1), reason)


def release_record(current: LeaseRecord, *, now: float) -> LeaseRecord:
    """The record that gives the Lease up (client-go's release)."""
    stamp = format_time(now)
    return LeaseRecord("", 1, stamp, stamp, current.lease_transitions)


def _duration_field(lease_duration_s: float) -> int:
    # leaseDurationSeconds is whole seconds; round up so nobody expires early.
    return max(1, math.ceil(lease_duration_s))


def record_from_lease(lease: Message) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(
        holder_identity=spec.holder_identity,
        lease_duration_s=(spec.lease_duration_seconds
                          if spec.HasField("lease_duration_seconds") else None),
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        lease_transitions=(spec.lease_transitions
                           if spec.HasField("lease_transitions") else 0))


def apply_record(lease: Message, record: LeaseRecord) -> None:
    """Write `record` into `lease.spec` (in place: call it on a copy)."""
    spec = lease.spec
    spec.holder_identity = record.holder_identity
    if record.lease_duration_s is None:
        spec.ClearField("lease_duration_seconds")
    else:
        spec.lease_duration_seconds = record.lease_duration_s
    spec.acquire_time = record.acquire_time
    spec.renew_time = record.renew_time
    spec.lease_transitions = record.lease_transitions


def _lease_class() -> type[Message]:
    # Imported on first use: coordination_pb2 is generated separately.
    from kubemu.api.v1 import coordination_pb2

    return coordination_pb2.Lease


# ---------------------------------------------------------------- the elector

class LeaderElector:
    def __init__(self, client: Client, lock_namespace: str, lock_name: str, identity: str, *,
                 lease_duration_s: float = 15, renew_deadline_s: float = 10,
                 retry_period_s: float = 2, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None):
        if not identity:
            raise ValueError("LeaderElector: identity must not be empty")
        if not lock_name:
            raise ValueError("LeaderElector: lock_name must not be empty")
        if not 0 < retry_period_s < renew_deadline_s < lease_duration_s:
            raise ValueError(
                "LeaderElector: need 0 < retry_period_s < renew_deadline_s < lease_duration_s, "
                f"got {retry_period_s}, {renew_deadline_s}, {lease_duration_s}")
        self.client = client
        self.lock_namespace = lock_namespace
        self.lock_name = lock_name
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self._clock = clock
        self._rng = rng or random.Random()
        self.is_leader = False
        # The record as last read or written (None before the first read).
        self.observed: LeaseRecord | None = None
        self._log = log.bind(lease=f"{lock_namespace}/{lock_name}", identity=identity)

    def holds_fresh_lease(self) -> bool:
        """Whether we hold the Lease as last observed and renewed it within
        renew_deadline_s: a leader checks this before acting, so a process
        resumed after a pause acts on nothing until it has renewed."""
        record = self.observed
        if record is None or record.holder_identity != self.identity:
            return False
        renewed = parse_time(record.renew_time)
        return renewed is not None and self._clock() - renewed < self.renew_deadline_s

    @property
    def leader(self) -> str:
        """The holder as last observed ("" when unknown or released)."""
        return self.observed.holder_identity if self.observed else ""

    async def try_acquire_or_renew(self) -> bool:
        """One round: True if we hold the Lease afterwards; False if someone else does.

        API errors (Conflict when another candidate wrote first, AlreadyExists,
        Unavailable, ...) propagate: the round failed, try again later.
        """
        now = self._clock()
        try:
            lease = await self.client.get(LEASES, self.lock_name, self.lock_namespace)
        except errors.NotFound:
            lease = None
        current = record_from_lease(lease) if lease is not None else None
        self.observed = current
        decision = decide(current, now=now, identity=self.identity,
                          lease_duration_s=self.lease_duration_s)
        if decision.action == WAIT:
            return False
        assert decision.record is not None
        if lease is None:
            new = _lease_class()()
            new.metadata.name = self.lock_name
            new.metadata.namespace = self.lock_namespace
            new.api_version, new.kind = LEASE_API_VERSION, LEASE_KIND
            apply_record(new, decision.record)
            await self.client.create(new)
        else:
            new = type(lease)()
            new.CopyFrom(lease)  # keeps metadata.resourceVersion: optimistic concurrency
            apply_record(new, decision.record)
            await self.client.update(new)
        if decision.action != RENEW:
            self._log.info("leaderelection: acquired lease", how=decision.action,
                           reason=decision.reason,
                           transitions=decision.record.lease_transitions)
        self.observed = decision.record
        return True

    async def run(self, on_started_leading: Callable[[], Awaitable[Any]],
                  on_stopped_leading: Callable[[], Any]) -> None:
        """Wait to lead, lead until lost or stopped, then return.

        Returns after stepping down (leadership lost, or on_started_leading
        returned). Cancelling run() stops gracefully: the leading task is
        cancelled, the Lease released, on_stopped_leading called, and the
        cancellation propagates.
        """
        await self._acquire()
        self.is_leader = True
        leading = asyncio.get_running_loop().create_task(
            on_started_leading(), name=f"leading:{self.lock_name}")
        # Stays False when run() is cancelled: a graceful stop, which releases.
        lost = False
        try:
            lost = await self._renew_until_lost(leading)
        finally:
            self.is_leader = False
            if not leading.done():
                leading.cancel()
            await asyncio.wait([leading])
            if not leading.cancelled() and leading.exception() is not None:
                self._log.error("leaderelection: on_started_leading failed",
                                error=repr(leading.exception()))
            if lost:
                self._log.warning("leaderelection: lost the lease, stepping down",
                                  holder=self.leader)
            else:
                await self._release()
            result = on_stopped_leading()
            if inspect.isawaitable(result):
                await result

    async def _acquire(self) -> None:
        while True:
            try:
                if await self.try_acquire_or_renew():
                    return
            except (errors.Conflict, errors.AlreadyExists) as exc:
                # Another candidate wrote first: the normal way to lose a round.
                self._log.debug("leaderelection: acquire attempt lost a race", error=str(exc))
            except (errors.ApiError, TimeoutError) as exc:
                self._log.warning("leaderelection: acquire attempt failed",
                                  error=str(exc) or "timed out")
            await asyncio.sleep(self.retry_period_s * (1 + _JITTER * self._rng.random()))

    async def _renew_until_lost(self, leading: asyncio.Task[Any]) -> bool:
        """Renew while leading; True when leadership was lost, False when `leading` ended."""
        loop = asyncio.get_running_loop()
        last_renew = loop.time()
        while True:
            await asyncio.wait([leading], timeout=self.retry_period_s)
            if leading.done():
                return False
            deadline = last_renew + self.renew_deadline_s
            try:
                async with asyncio.timeout_at(deadline):
                    held = await self.try_acquire_or_renew()
            except (errors.ApiError, TimeoutError) as exc:
                self._log.warning("leaderelection: renew failed", error=str(exc) or "timed out")
                if loop.time() >= deadline:
                    return True
                continue
            if not held:
                return True  # someone else holds a valid lease: we are not leader
            last_renew = loop.time()

    async def _release(self) -> None:
        """Give the Lease up if we still hold it; best effort, bounded."""
        try:
            async with asyncio.timeout(self.renew_deadline_s):
                lease = await self.client.get(LEASES, self.lock_name, self.lock_namespace)
                current = record_from_lease(lease)
                if current.holder_identity != self.identity:
                    return
                new = type(lease)()
                new.CopyFrom(lease)
                apply_record(new, release_record(current, now=self._clock()))
                await self.client.update(new)
                self.observed = release_record(current, now=self._clock())
                self._log.info("leaderelection: released lease")
        except (errors.ApiError, TimeoutError) as exc:
            self._log.warning("leaderelection: release failed; the lease will expire instead",
                              error=str(exc) or "timed out")


# ---------------------------------------------------------------- flags

def add_flags(parser: Any, *, namespace: str, name: str, lease_duration_s: float,
              renew_deadline_s: float, retry_period_s: float, leader_elect: bool = True) -> None:
    """A component's leader-election flags (kube-scheduler's and
    kube-controller-manager's, seconds with _s); check them with check_flags."""
    parser.add_argument("--leader-elect", type=_bool_flag, nargs="?", const=True,
                        default=leader_elect, metavar="BOOL",
                        help="take part in leader election (default true)")
    parser.add_argument("--leader-elect-resource-namespace", default=namespace)
    parser.add_argument("--leader-elect-resource-name", default=name)
    parser.add_argument("--lease-duration-s", type=float, default=lease_duration_s)
    parser.add_argument("--renew-deadline-s", type=float, default=renew_deadline_s)
    parser.add_argument("--retry-period-s", type=float, default=retry_period_s)
    parser.add_argument("--identity", default="",
                        help="this candidate's name in the Lease (default: hostname_UUID)")


def check_flags(parser: Any, args: Any) -> None:
    """parser.error unless 0 < retry period < renew deadline < lease duration."""
    if not 0 < args.retry_period_s < args.renew_deadline_s < args.lease_duration_s:
        parser.error(f"need 0 < --retry-period-s < --renew-deadline-s < --lease-duration-s, "
                     f"got {args.retry_period_s:g}, {args.renew_deadline_s:g}, "
                     f"{args.lease_duration_s:g}")


def _bool_flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
