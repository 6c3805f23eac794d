"""Image pulls for the pod workers of one kubelet (Kubernetes' images.imageManager).

`ensure(pod, ctr, field_path)` makes the container's image present as its
imagePullPolicy says and answers with a PullResult: ok, or the waiting
reason and message the container shows (InvalidImageName,
ErrImageNeverPull, ErrImagePull, ImagePullBackOff) and when to look again.
Events are Kubernetes': Pulling, Pulled (with the time the pull took, or
"already present on machine"), Failed ("Failed to pull image ...", then
"Error: ErrImagePull"), BackOff ("Back-off pulling image ..."), InspectFailed,
ErrImageNeverPull. A failed pull arms a per-(pod, image) back-off
(kubemu.backoff.Backoff, --image-backoff-*); while it runs no pull is tried
and the BackOff event is recorded once per stretch. `forget_pod(uid)` drops
a pod's back-off state when its worker ends.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import grpc
from google.protobuf.message import Message

from kubelet import cri
from kubemu import timefmt
from kubemu.backoff import Backoff
from kubemu.client.events import NORMAL, WARNING, EventRecorder


@dataclasses.dataclass(frozen=True)
class PullResult:
    ok: bool
    reason: str = ""              # the container's waiting reason when not ok
    message: str = ""
    retry_s: float | None = None  # look again within this long (None: at the next sync)


def go_code(code: grpc.StatusCode) -> str:
    """grpc-go's name of a status code: NOT_FOUND -> NotFound."""
    return "".join(part.capitalize() for part in code.name.split("_"))


class ImagePuller:
    def __init__(self, runtime: cri.RuntimeClient, events: EventRecorder, backoff: Backoff, *,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.runtime = runtime
        self.events = events
        self.backoff = backoff
        self.clock = clock
        self.monotonic = monotonic
        self._failed_at: dict[str, float] = {}   # back-off key -> when the last pull failed
        self._backing_off: set[str] = set()      # keys whose BackOff event is out

    @staticmethod
    def _key(uid: str, image: str) -> str:
        return f"{uid}/image/{image}"

    def forget_pod(self, uid: str) -> None:
        prefix = f"{uid}/"
        for key in [k for k in self._failed_at if k.startswith(prefix)]:
            del self._failed_at[key]
        self._backing_off = {k for k in self._backing_off if not k.startswith(prefix)}
        self.backoff.forget_prefix(prefix)

    async def ensure(self, pod: Message, ctr: Message, field_path: str) -> PullResult:
        image = ctr.image
        policy = ctr.image_pull_policy or "IfNotPresent"
        try:
            present = await self.runtime.image_status(image)
        except cri.RuntimeCallError as err:
            if err.code == grpc.StatusCode.INVALID_ARGUMENT:
                message = f'Failed to apply default image tag "{image}": {err.message}'
                self.events.record(pod, WARNING, "InspectFailed", message, field_path=field_path)
                return PullResult(False, "InvalidImageName", message)
            raise
        if policy == "Never":
            if present is None:
                message = f'Container image "{image}" is not present with pull policy of Never'
                self.events.record(pod, WARNING, "ErrImageNeverPull", message,
                                   field_path=field_path)
                return PullResult(False, "ErrImageNeverPull", message)
            return PullResult(True)
        if present is not None and policy != "Always":
            self.events.record(pod, NORMAL, "Pulled",
                               f'Container image "{image}" already present on machine',
                               field_path=field_path)
            return PullResult(True)
        key = self._key(pod.metadata.uid, image)
        failed_at = self._failed_at.get(key)
        if failed_at is not None:
            remaining_s = self.backoff.remaining_s(key, failed_at)
            if remaining_s > 0:
                message = f'Back-off pulling image "{image}"'
                if key not in self._backing_off:
                    self._backing_off.add(key)
                    self.events.record(pod, NORMAL, "BackOff", message, field_path=field_path)
                return PullResult(False, "ImagePullBackOff", message, retry_s=remaining_s)
        self._backing_off.discard(key)
        self.events.record(pod, NORMAL, "Pulling", f'Pulling image "{image}"',
                           field_path=field_path)
        begun = self.monotonic()
        try:
            await self.runtime.pull_image(image)
        except cri.RuntimeCallError as err:
            self._failed_at[key] = self.clock()
            delay_s = self.backoff.next(key)
            # Worded as the kubelet relays a CRI error.
            message = f"rpc error: code = {go_code(err.code)} desc = {err.message}"
            self.events.record(pod, WARNING, "Failed", f'Failed to pull image "{image}": {message}',
                               field_path=field_path)
            self.events.record(pod, WARNING, "Failed", "Error: ErrImagePull",
                               field_path=field_path)
            return PullResult(False, "ErrImagePull", message, retry_s=delay_s)
        self._failed_at.pop(key, None)
        self.backoff.forget(key)
        # The kubelet prints the pull's duration truncated to milliseconds.
        took = timefmt.go_duration(math.floor((self.monotonic() - begun) * 1000) / 1000)
        pulled = await self.runtime.image_status(image)
        size = f" Image size: {pulled.size} bytes." if pulled is not None else ""
        self.events.record(pod, NORMAL, "Pulled", f'Successfully pulled image "{image}" '
                           f'in {took} ({took} including waiting).{size}', field_path=field_path)
        return PullResult(True)
