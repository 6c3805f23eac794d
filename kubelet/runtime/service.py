"""The Runtime gRPC servicer: requests in, ContainerRuntime calls, protos out.

Failures from the core carry their gRPC status code (runtime.RuntimeFailure);
anything else is a bug, logged with its traceback and returned as INTERNAL.
"""
from __future__ import annotations

import asyncio
import functools

import grpc
import grpc.aio
import structlog

from kubelet.runtime import runtime as rt
from kubelet.runtime import state as st
from kubemu import streams
from kubemu.runtime.v1 import runtime_pb2 as pb
from kubemu.runtime.v1 import runtime_pb2_grpc as pb_grpc

log = structlog.get_logger()


def rpc(method):
    @functools.wraps(method)
    async def handler(self, request, context):
        try:
            return await method(self, request, context)
        except rt.RuntimeFailure as err:
            await context.abort(err.code, str(err))
        except Exception as err:  # a bug: say so instead of hanging the caller
            log.exception("runtime call failed", method=method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
    return handler


def sandbox_metadata(s: st.SandboxRecord) -> pb.PodSandboxMetadata:
    return pb.PodSandboxMetadata(name=s.name, uid=s.uid, namespace=s.namespace, attempt=s.attempt)


def sandbox_status(s: st.SandboxRecord) -> pb.PodSandboxStatus:
    return pb.PodSandboxStatus(
        id=s.id, metadata=sandbox_metadata(s), state=pb.PodSandboxState.Value(s.state),
        created_at=s.created_at, network=pb.PodSandboxNetworkStatus(ip=s.pod_ip),
        labels=s.labels, annotations=s.annotations, hostname=s.hostname,
        log_directory=s.log_directory, pod_dir=s.pod_dir)


def container_metadata(r: st.ContainerRecord) -> pb.ContainerMetadata:
    return pb.ContainerMetadata(name=r.name, attempt=r.attempt)


def container_summary(r: st.ContainerRecord) -> pb.Container:
    return pb.Container(
        id=r.id, pod_sandbox_id=r.sandbox_id, metadata=container_metadata(r),
        image=pb.ImageSpec(image=r.image), image_ref=r.image_ref,
        state=pb.ContainerState.Value(r.state), created_at=r.created_at, labels=r.labels,
        annotations=r.annotations)


def container_status(r: st.ContainerRecord) -> pb.ContainerStatus:
    return pb.ContainerStatus(
        id=r.id, metadata=container_metadata(r), state=pb.ContainerState.Value(r.state),
        created_at=r.created_at, started_at=r.started_at, finished_at=r.finished_at,
        exit_code=r.exit_code, image=pb.ImageSpec(image=r.image), image_ref=r.image_ref,
        reason=r.reason, message=r.message, labels=r.labels, annotations=r.annotations,
        mounts=[pb.Mount(container_path=m.container_path, host_path=m.host_path,
                         readonly=m.readonly) for m in r.mounts],
        log_path=r.log_path, pid=r.pid, pod_sandbox_id=r.sandbox_id, rootfs=r.rootfs,
        isolation=r.isolation or "plain")


def image_pb(info: dict) -> pb.Image:
    return pb.Image(id=info["id"], repo_tags=info["repo_tags"], repo_digests=info["repo_digests"],
                    size=info["size"], spec=pb.ImageSpec(image=(info["repo_tags"] or [""])[0]))


class RuntimeService(pb_grpc.RuntimeServicer):
    def __init__(self, runtime: rt.ContainerRuntime):
        self.rt = runtime

    @rpc
    async def Version(self, request, context):
        return pb.VersionResponse(version="0.1.0", runtime_name=rt.RUNTIME_NAME,
                                  runtime_version=rt.RUNTIME_VERSION,
                                  runtime_api_version=rt.RUNTIME_API_VERSION,
                                  isolation=self.rt.isolation.mode,
                                  isolation_reason=self.rt.isolation.reason,
                                  **self.rt.limits_info())

    @rpc
    async def Status(self, request, context):
        return pb.StatusResponse(conditions=[
            pb.RuntimeCondition(type="RuntimeReady", status=True),
            pb.RuntimeCondition(type="NetworkReady", status=True)])

    # ------------------------------------------------------------ sandboxes

    @rpc
    async def RunPodSandbox(self, request, context):
        return pb.RunPodSandboxResponse(pod_sandbox_id=await self.rt.run_sandbox(request.config))

    @rpc
    async def StopPodSandbox(self, request, context):
        await self.rt.stop_sandbox(request.pod_sandbox_id, request.timeout_s)
        return pb.StopPodSandboxResponse()

    @rpc
    async def RemovePodSandbox(self, request, context):
        await self.rt.remove_sandbox(request.pod_sandbox_id)
        return pb.RemovePodSandboxResponse()

    @rpc
    async def PodSandboxStatus(self, request, context):
        return pb.PodSandboxStatusResponse(
            status=sandbox_status(self.rt.sandbox(request.pod_sandbox_id)))

    @rpc
    async def ListPodSandbox(self, request, context):
        f = request.filter
        state = pb.PodSandboxState.Name(f.state.state) if f.HasField("state") else None
        items = self.rt.list_sandboxes(f.id, state, dict(f.label_selector))
        return pb.ListPodSandboxResponse(items=[
            pb.PodSandbox(id=s.id, metadata=sandbox_metadata(s),
                          state=pb.PodSandboxState.Value(s.state), created_at=s.created_at,
                          labels=s.labels, annotations=s.annotations) for s in items])

    # ------------------------------------------------------------ containers

    @rpc
    async def CreateContainer(self, request, context):
        container_id = await self.rt.create_container(request.pod_sandbox_id, request.config)
        record = self.rt.container(container_id).record
        return pb.CreateContainerResponse(container_id=container_id, warnings=record.warnings,
                                          isolation_warnings=record.isolation_warnings)

    @rpc
    async def StartContainer(self, request, context):
        await self.rt.start_container(request.container_id)
        return pb.StartContainerResponse()

    @rpc
    async def StopContainer(self, request, context):
        await self.rt.stop_container(request.container_id, request.timeout_s)
        return pb.StopContainerResponse()

    @rpc
    async def RemoveContainer(self, request, context):
        await self.rt.remove_container(request.container_id)
        return pb.RemoveContainerResponse()

    @rpc
    async def ListContainers(self, request, context):
        f = request.filter
        state = pb.ContainerState.Name(f.state.state) if f.HasField("state") else None
        found = self.rt.list_containers(f.id, f.pod_sandbox_id, state, dict(f.label_selector))
        return pb.ListContainersResponse(containers=[container_summary(c.record) for c in found])

    @rpc
    async def ContainerStatus(self, request, context):
        return pb.ContainerStatusResponse(
            status=container_status(self.rt.container(request.container_id).record))

    @rpc
    async def ExecSync(self, request, context):
        out, err, code = await self.rt.exec_sync(request.container_id, list(request.cmd),
                                                 request.timeout_s)
        return pb.ExecSyncResponse(stdout=out, stderr=err, exit_code=code)

    async def _session(self, context, run) -> None:
        """A bidirectional session (ExecStream, Attach): the start within the set-up
        deadline, then `run(start, inputs, send)` until it ends."""
        try:
            first = await streams.read_first(context, streams.setup_timeout_s(0))
            if streams.input_kind(first) != "start":
                raise rt.InvalidArgument("the first message of a session must be its start")

            inputs = streams.Inputs(context)
            try:
                await run(first.start, inputs.__aiter__(), context.write)
                await inputs.linger()
            finally:
                await inputs.close()
        except rt.RuntimeFailure as err:
            await context.abort(err.code, str(err))
        except (streams.SetupTimeout, streams.ProtocolError) as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as err:  # a bug: say so instead of hanging the caller
            log.exception("runtime session failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")

    async def ExecStream(self, request_iterator, context):
        await self._session(context, self.rt.exec_stream)

    async def Attach(self, request_iterator, context):
        await self._session(context, self.rt.attach)

    # ------------------------------------------------------------ stats

    async def _stats(self, c: rt.Container) -> pb.ContainerStats:
        s = await self.rt.stats(c)
        r = c.record
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(id=r.id, metadata=container_metadata(r),
                                              labels=r.labels, annotations=r.annotations),
            cpu=pb.CpuUsage(timestamp=s["timestamp"], usage_core_nano_seconds=s["cpu_ns"],
                            usage_nano_cores=s["nano_cores"],
                            window_seconds=s["cpu_window_s"]),
            memory=pb.MemoryUsage(timestamp=s["timestamp"],
                                  working_set_bytes=s["working_set_bytes"],
                                  rss_bytes=s["rss_bytes"]),
            process_count=s["process_count"])

    @rpc
    async def ContainerStats(self, request, context):
        c = self.rt.container(request.container_id)
        return pb.ContainerStatsResponse(stats=await self._stats(c))

    @rpc
    async def ListContainerStats(self, request, context):
        f = request.filter
        found = self.rt.list_containers(f.id, f.pod_sandbox_id, st.RUNNING, dict(f.label_selector))
        return pb.ListContainerStatsResponse(stats=[await self._stats(c) for c in found])

    # ------------------------------------------------------------ images

    @rpc
    async def ImageStatus(self, request, context):
        info = self.rt.image_status(request.image.image)
        return pb.ImageStatusResponse(image=image_pb(info) if info else None)

    @rpc
    async def PullImage(self, request, context):
        return pb.PullImageResponse(image_ref=await self.rt.pull_image(request.image.image))

    @rpc
    async def ListImages(self, request, context):
        return pb.ListImagesResponse(images=[image_pb(i) for i in self.rt.list_images()])
