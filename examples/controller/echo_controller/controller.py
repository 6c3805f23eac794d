"""The echo controller: a ConfigMap labelled `example.kubemu.dev/echo=true`
gets a twin, `<name>-echo`, in its namespace, with the same data.

The contract, as a user of the cluster sees it:
- the echo has the source's `data` and `binaryData`, and an ownerReference to
  the source (controller=true, blockOwnerDeletion=true), so deleting the source
  deletes the echo (the controller-manager's garbage collector does that);
- a change of the source's data reaches the echo; an echo edited or deleted by
  hand is put back;
- a source whose label is removed (or is no longer "true") loses its echo;
- a ConfigMap named `<name>-echo` that this source does not control is left
  alone, and the source gets a Warning event ErrResourceExists (what
  kubernetes/sample-controller does for a Deployment it does not own).

The shape is kubernetes/sample-controller's: one informer on ConfigMaps, event
handlers that only turn an object into the key of its source
("namespace/name") and add it to a rate-limited workqueue, and one sync(key)
that reads the informer's cache, compares the echo it wants with the echo
there is, and writes the difference. Running it twice changes nothing the
second time, so a sync cut short by anything (the apiserver killed between a
write and its answer, a conflict, a restart of this process) is simply run
again: an error requeues the key with per-key exponential backoff, at most
`max_retries` times in a row (then it is dropped until its next event).
"""
from __future__ import annotations

import asyncio
import logging

import grpc
from google.protobuf.message import Message

from kubemu.api import errors
from kubemu.api.v1 import core_pb2, meta_pb2
from kubemu.client import Client, Informer, RateLimitingQueue, meta_namespace_key
from kubemu.client.events import EventRecorder
from kubemu.client.informer import object_of
from kubemu.client.workqueue import ShutDown

LABEL = "example.kubemu.dev/echo"
LABEL_VALUE = "true"
SUFFIX = "-echo"
NAME = "echo-controller"
# Kubernetes' limit on an object's name (a DNS subdomain).
NAME_CHARS_MAX = 253

log = logging.getLogger(NAME)


# --- what the controller wants: pure functions of the objects -----------------

def is_source(cm: Message) -> bool:
    return cm.metadata.labels.get(LABEL) == LABEL_VALUE


def echo_name(source_name: str) -> str:
    return source_name + SUFFIX


def controller_ref(obj: Message) -> meta_pb2.OwnerReference | None:
    """The ownerReference with controller=true, if any (there is at most one)."""
    return next((ref for ref in obj.metadata.owner_references if ref.controller), None)


def controlled_by(echo: Message, source: Message) -> bool:
    ref = controller_ref(echo)
    return ref is not None and ref.kind == "ConfigMap" and ref.uid == source.metadata.uid


def desired_echo(source: Message) -> core_pb2.ConfigMap:
    """The echo of `source`, as it should be created."""
    echo = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    echo.metadata.name = echo_name(source.metadata.name)
    echo.metadata.namespace = source.metadata.namespace
    echo.metadata.owner_references.append(meta_pb2.OwnerReference(
        api_version="v1", kind="ConfigMap", name=source.metadata.name,
        uid=source.metadata.uid, controller=True, block_owner_deletion=True))
    echo.data.update(source.data)
    echo.binary_data.update(source.binary_data)
    return echo


def same_data(a: Message, b: Message) -> bool:
    return dict(a.data) == dict(b.data) and dict(a.binary_data) == dict(b.binary_data)


def source_keys_of(cm: Message) -> list[str]:
    """The keys of the sources `cm` concerns: its own when it is a source, and
    `<namespace>/<name>` when it is named `<name>-echo` (an echo, ours or one
    in the way of ours). A sync of a key that is no source does nothing."""
    keys = [meta_namespace_key(cm)] if is_source(cm) else []
    name = cm.metadata.name
    if name.endswith(SUFFIX) and len(name) > len(SUFFIX):
        keys.append(f"{cm.metadata.namespace}/{name.removesuffix(SUFFIX)}")
    return keys


# --- the controller -----------------------------------------------------------

class EchoController:
    """Informer -> keys -> rate-limited workqueue -> sync(key).

    client: a kubemu.client Client (the controller never closes it).
    namespace: the namespace to watch; "" for all of them.
    workers: syncs running at once (never two of one key: the workqueue's contract).
    max_retries: failed syncs in a row of one key before it is dropped.
    """

    def __init__(self, client: Client, *, namespace: str = "", workers: int = 2,
                 max_retries: int = 15, base_delay_s: float = 0.005,
                 max_delay_s: float = 10.0, queue_max: int = 10_000):
        if workers <= 0:
            raise ValueError(f"EchoController: workers must be > 0, got {workers}")
        if max_retries < 0:
            raise ValueError(f"EchoController: max_retries must be >= 0, got {max_retries}")
        self.client = client
        self.workers = workers
        self.max_retries = max_retries
        self.informer = Informer(client, "configmaps", namespace)
        self.informer.add_handler(self._on_add, self._on_update, self._on_delete)
        self.queue = RateLimitingQueue(base_delay_s=base_delay_s, max_delay_s=max_delay_s,
                                       max_len=queue_max)
        self.recorder = EventRecorder(client, NAME)
        # Counters for logs and tests: syncs run, failed, and keys given up on.
        self.syncs = 0
        self.sync_errors = 0
        self.dropped = 0

    # --- event handlers: only turn an object into a key -----------------------

    def _enqueue(self, cm: Message) -> None:
        for key in source_keys_of(cm):
            try:
                self.queue.add(key)
            except Exception:  # QueueFull: dropped, said loudly; its next event brings it back
                log.exception("workqueue refused key %s", key)

    def _on_add(self, cm: Message) -> None:
        self._enqueue(cm)

    def _on_update(self, old: Message, new: Message) -> None:
        self._enqueue(old)  # a source that lost its label: its echo goes
        self._enqueue(new)

    def _on_delete(self, cm: Message) -> None:
        self._enqueue(object_of(cm))  # an echo deleted by hand is put back

    # --- the one sync ---------------------------------------------------------

    async def sync(self, key: str) -> None:
        """Make the echo of the source `key` what it should be. Idempotent."""
        namespace, _, name = key.rpartition("/")
        source = self.informer.get(key)
        if source is None:
            return  # deleted: the garbage collector deletes its echo (ownerReference)
        echo = self.informer.get(f"{namespace}/{echo_name(name)}")
        if not is_source(source):
            if echo is not None and controlled_by(echo, source):
                log.info("deleting echo %s/%s: its source is no longer labelled %s=%s",
                         namespace, echo.metadata.name, LABEL, LABEL_VALUE)
                try:
                    await self.client.delete("configmaps", echo.metadata.name, namespace,
                                             uid=echo.metadata.uid)
                except errors.NotFound:
                    pass
            return
        if len(echo_name(name)) > NAME_CHARS_MAX:
            self.recorder.record(source, "Warning", "InvalidName",
                                 f"cannot echo: {echo_name(name)!r} is longer than "
                                 f"{NAME_CHARS_MAX} characters")
            return  # no retry can help
        if echo is None:
            log.info("creating echo %s/%s", namespace, echo_name(name))
            # AlreadyExists (our cache is behind, e.g. the answer to an earlier
            # create was lost) is an error like any other: retried once the
            # informer has the echo, then compared.
            await self.client.create(desired_echo(source))
            return
        if not controlled_by(echo, source):
            self.recorder.record(source, "Warning", "ErrResourceExists",
                                 f'Resource "{echo.metadata.name}" already exists and is not '
                                 f"managed by {NAME}")
            return  # a person has to resolve it; deleting that ConfigMap brings the key back
        if same_data(echo, source):
            return
        log.info("updating echo %s/%s", namespace, echo.metadata.name)
        updated = core_pb2.ConfigMap()
        updated.CopyFrom(echo)  # never change an object of the cache in place
        updated.data.clear()
        updated.data.update(source.data)
        updated.binary_data.clear()
        updated.binary_data.update(source.binary_data)
        # Carries the cached resourceVersion: a Conflict means the cache was
        # stale, and the retry compares again with the newer echo.
        await self.client.update(updated)

    # --- the loop -------------------------------------------------------------

    async def run(self, *, sync_log_every_s: float = 30.0) -> None:
        """Run until cancelled: informer, then (once its first list is in) the workers."""
        self.recorder.start()
        self.informer.start()
        workers: list[asyncio.Task[None]] = []
        try:
            while True:  # as long as it takes: the apiserver may not be up yet
                try:
                    await self.informer.wait_synced(sync_log_every_s)
                    break
                except TimeoutError:
                    log.warning("ConfigMaps not listed yet; still waiting")
            log.info("%s started, %d workers", NAME, self.workers)
            loop = asyncio.get_running_loop()
            workers = [loop.create_task(self._worker(), name=f"{NAME}-{i}")
                       for i in range(self.workers)]
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.informer.stop()
            await self.recorder.stop()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: str) -> None:
        """One sync of `key`, with the retry policy."""
        self.syncs += 1
        try:
            await self.sync(key)
        except (errors.ApiError, grpc.RpcError, TimeoutError, OSError) as exc:
            self.sync_errors += 1
            self._retry(key, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug for one key must not stop the others
            self.sync_errors += 1
            log.exception("sync of %s failed (a bug?)", key)
            self._retry(key, f"{type(exc).__name__}: {exc}")
        else:
            self.queue.forget(key)

    def _retry(self, key: str, why: str) -> None:
        failures = self.queue.num_requeues(key)
        if failures >= self.max_retries:
            self.dropped += 1
            self.queue.forget(key)
            log.error("dropping %s after %d failed syncs: %s", key, failures + 1, why)
            return
        delay_s = self.queue.add_rate_limited(key)
        log.warning("sync of %s failed (retry %d in %.3fs): %s", key, failures + 1, delay_s, why)
