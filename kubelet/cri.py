"""The kubelet's client of the node runtime (kubemu.runtime.v1.Runtime on a unix socket).

Every call carries a deadline. Failures become one of two exceptions, so a
caller knows whether waiting can help:
- RuntimeUnavailable: the runtime is not answering (restarting, killed,
  overloaded). Nothing is known about the containers: keep the last state.
- RuntimeCallError: the runtime answered with an error (`code` is the gRPC
  status, e.g. NOT_FOUND for an unknown image or container).

The channel reconnects quickly (at most every `reconnect_backoff_s_max`), so a
restarted runtime is seen again within about a second, not after gRPC's
default reconnect backoff of up to two minutes.
"""
from __future__ import annotations

import grpc
import grpc.aio

from kubemu.runtime.v1 import runtime_pb2 as pb
from kubemu.runtime.v1 import runtime_pb2_grpc as pb_grpc

# Labels the kubelet puts on sandboxes and containers (the Kubernetes ones),
# so that a restarted kubelet finds what belongs to which pod.
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
GRACE_ANNOTATION = "io.kubernetes.pod.terminationGracePeriod"
RESTART_COUNT_ANNOTATION = "io.kubernetes.container.restartCount"
# The hash of the container's spec when it was created (kubelet/containers.py).
CONTAINER_HASH_ANNOTATION = "io.kubernetes.container.hash"
INIT_ANNOTATION = "kubemu.io/init-container"

UNAVAILABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                     grpc.StatusCode.CANCELLED)

RUNNING = pb.CONTAINER_RUNNING
EXITED = pb.CONTAINER_EXITED
CREATED = pb.CONTAINER_CREATED
UNKNOWN = pb.CONTAINER_UNKNOWN
SANDBOX_READY = pb.SANDBOX_READY


class RuntimeUnavailable(Exception):
    """The runtime did not answer; a later call may succeed."""


class RuntimeCallError(Exception):
    """The runtime answered with an error status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class RuntimeClient:
    def __init__(self, socket_path: str, *, timeout_s: float = 10.0,
                 reconnect_backoff_s_max: float = 1.0):
        self.target = socket_path if socket_path.startswith("unix:") else f"unix:{socket_path}"
        self.timeout_s = timeout_s
        backoff_ms = int(reconnect_backoff_s_max * 1000)
        self._channel = grpc.aio.insecure_channel(self.target, options=[
            ("grpc.initial_reconnect_backoff_ms", min(100, backoff_ms)),
            ("grpc.min_reconnect_backoff_ms", min(100, backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", backoff_ms),
            ("grpc.max_receive_message_length", 64 << 20),
        ])
        self._stub = pb_grpc.RuntimeStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request, timeout_s: float | None = None):
        try:
            return await getattr(self._stub, method)(request, timeout=timeout_s or self.timeout_s)
        except grpc.aio.AioRpcError as err:
            if err.code() in UNAVAILABLE_CODES:
                raise RuntimeUnavailable(f"runtime {method}: {err.code().name}: "
                                         f"{err.details()}") from None
            raise RuntimeCallError(err.code(), err.details() or err.code().name) from None

    # ------------------------------------------------------------ runtime

    async def version(self) -> pb.VersionResponse:
        return await self._call("Version", pb.VersionRequest())

    async def status(self, timeout_s: float | None = None) -> pb.StatusResponse:
        return await self._call("Status", pb.StatusRequest(), timeout_s)

    # ------------------------------------------------------------ sandboxes

    async def run_sandbox(self, config: pb.PodSandboxConfig) -> str:
        response = await self._call("RunPodSandbox", pb.RunPodSandboxRequest(config=config))
        return response.pod_sandbox_id

    async def stop_sandbox(self, sandbox_id: str, timeout_s: float) -> None:
        await self._call("StopPodSandbox", pb.StopPodSandboxRequest(
            pod_sandbox_id=sandbox_id, timeout_s=timeout_s),
            timeout_s=self.timeout_s + timeout_s)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        await self._call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                         timeout_s=self.timeout_s * 3)

    async def sandbox_status(self, sandbox_id: str) -> pb.PodSandboxStatus:
        response = await self._call("PodSandboxStatus",
                                    pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id))
        return response.status

    async def list_sandboxes(self, labels: dict[str, str] | None = None,
                             ready_only: bool = False) -> list[pb.PodSandbox]:
        f = pb.PodSandboxFilter(label_selector=labels or {})
        if ready_only:
            f.state.state = pb.SANDBOX_READY
        response = await self._call("ListPodSandbox", pb.ListPodSandboxRequest(filter=f))
        return list(response.items)

    # ------------------------------------------------------------ containers

    async def create_container(self, sandbox_id: str, config: pb.ContainerConfig,
                               sandbox_config: pb.PodSandboxConfig
                               ) -> tuple[str, list[str], list[str]]:
        """The new container's id, how the runtime approximates limits it cannot
        enforce, and what its isolation mode cannot do for it (one sentence
        each: Warning events)."""
        response = await self._call("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config))
        return (response.container_id, list(response.warnings),
                list(response.isolation_warnings))

    async def start_container(self, container_id: str) -> None:
        await self._call("StartContainer", pb.StartContainerRequest(container_id=container_id))

    async def stop_container(self, container_id: str, timeout_s: float) -> None:
        # The runtime waits the grace period, then SIGKILLs and waits for the end.
        await self._call("StopContainer", pb.StopContainerRequest(
            container_id=container_id, timeout_s=timeout_s),
            timeout_s=timeout_s + self.timeout_s + 10.0)

    async def remove_container(self, container_id: str) -> None:
        await self._call("RemoveContainer", pb.RemoveContainerRequest(container_id=container_id),
                         timeout_s=self.timeout_s * 3)

    async def list_containers(self, sandbox_id: str = "",
                              labels: dict[str, str] | None = None) -> list[pb.Container]:
        f = pb.ContainerFilter(pod_sandbox_id=sandbox_id, label_selector=labels or {})
        response = await self._call("ListContainers", pb.ListContainersRequest(filter=f))
        return list(response.containers)

    async def container_status(self, container_id: str) -> pb.ContainerStatus:
        response = await self._call("ContainerStatus",
                                    pb.ContainerStatusRequest(container_id=container_id))
        return response.status

    async def exec_sync(self, container_id: str, cmd: list[str],
                        timeout_s: float) -> pb.ExecSyncResponse:
        # timeout_s 0: the command has no limit of its own; the call still has one.
        deadline_s = (timeout_s if timeout_s > 0 else 300.0) + self.timeout_s
        return await self._call("ExecSync", pb.ExecSyncRequest(
            container_id=container_id, cmd=cmd, timeout_s=timeout_s), timeout_s=deadline_s)

    def open_stream(self, method: str) -> grpc.aio.StreamStreamCall:
        """A bidirectional session call ("ExecStream", "Attach") with no deadline of
        its own: the caller bounds its set-up (kubemu.streams) and cancels it."""
        return getattr(self._stub, method)()

    @staticmethod
    def stream_error(method: str, err: grpc.aio.AioRpcError) -> Exception:
        """A session call's failure as one of this module's exceptions."""
        if err.code() in UNAVAILABLE_CODES and err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            return RuntimeUnavailable(f"runtime {method}: {err.code().name}: {err.details()}")
        return RuntimeCallError(err.code(), err.details() or err.code().name)

    async def list_stats(self) -> list[pb.ContainerStats]:
        response = await self._call("ListContainerStats", pb.ListContainerStatsRequest())
        return list(response.stats)

    # ------------------------------------------------------------ images

    async def image_status(self, image: str) -> pb.Image | None:
        response = await self._call("ImageStatus",
                                    pb.ImageStatusRequest(image=pb.ImageSpec(image=image)))
        return response.image if response.HasField("image") else None

    async def pull_image(self, image: str) -> str:
        response = await self._call("PullImage",
                                    pb.PullImageRequest(image=pb.ImageSpec(image=image)))
        return response.image_ref

    async def list_images(self) -> list[pb.Image]:
        return list((await self._call("ListImages", pb.ListImagesRequest())).images)
