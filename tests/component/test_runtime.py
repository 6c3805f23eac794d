"""The container runtime as a real process (`python -m kubelet.runtime`) on a unix
socket, in both isolation modes (the `runtime` fixture runs each test in the
namespaces mode, where the machine allows it, and in the plain mode):
containers are real process trees, stops send real signals, the memory limit
really kills, and a restarted runtime re-adopts what is still running. What
a container sees in the namespaces mode is tests/component/test_container_view.py's.

Every test ends by killing whatever it started (the runtime, and every process
of its containers) and asserting that nothing is left.
"""
from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import stat
import sys
import time

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubemu import cluster_home
from kubemu.client.wait import wait_for, wait_for_sync
from kubemu.runtime.v1 import runtime_pb2 as pb
from tests.component.runtime_harness import (
    MODES, NAMESPACES, PLAIN, RPC_TIMEOUT_S, START_TIMEOUT_S, WAIT_S, MiB, NotYet, alive, catches,
    free_port, http_get, pod_ip, running_runtime)
from tests.support import Proc


@pytest.fixture(params=MODES)
async def runtime(tmp_path, request):
    async with running_runtime(tmp_path, mode=request.param) as rt:
        yield rt


# ---------------------------------------------------------------- tests

async def test_container_runs_with_a_live_pid_and_logs_its_output(runtime):
    ip = pod_ip()
    sandbox = await runtime.sandbox("web", ip=ip)
    cid = await runtime.run(sandbox, "main", command=["sh", "-c", "echo hello; sleep 30"])

    status = await runtime.status(cid)
    assert status.state == pb.CONTAINER_RUNNING
    assert status.pid > 0 and alive(status.pid)

    def command_line():   # plain mode: first the cgroup-joining stub, which execs it
        got = psutil.Process(status.pid).cmdline()
        return got[:2] == ["sh", "-c"]
    await wait_for(lambda: asyncio.to_thread(command_line), 10, message="sh -c running")
    assert os.getsid(status.pid) == status.pid  # its own session and process group
    assert "hello" in await runtime.wait_log(cid, "hello")
    assert status.log_path.endswith("/main/0.log")

    listed = await runtime.stub.ListContainers(
        pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sandbox)),
        timeout=RPC_TIMEOUT_S)
    assert [c.id for c in listed.containers] == [cid]
    pod = (await runtime.stub.PodSandboxStatus(pb.PodSandboxStatusRequest(
        pod_sandbox_id=sandbox), timeout=RPC_TIMEOUT_S)).status
    assert pod.network.ip == ip and pod.state == pb.SANDBOX_READY
    assert f"{ip}\tweb" in pathlib.Path(pod.pod_dir, "hosts").read_text()


async def test_stop_sends_sigterm_and_the_rest_of_the_container_goes_with_its_main_process(
        runtime):
    sandbox = await runtime.sandbox()
    cid = await runtime.run(sandbox, "main", command=[
        "sh", "-c", "trap 'exit 3' TERM; echo ready; sleep 30 & sleep 31 & wait"])
    await runtime.wait_log(cid, "ready")
    status = await runtime.status(cid)
    children = await wait_for(lambda: len(c := psutil.Process(status.pid).children()) == 2 and c,
                              WAIT_S)

    await runtime.stop(cid, timeout_s=10)

    status = await runtime.status(cid)
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 3, "Error")
    assert not alive(status.pid)
    await wait_for(lambda: not any(alive(c.pid) for c in children), WAIT_S,
                   message="the main process's children are gone")


async def test_stop_sends_sigterm_to_the_whole_group_in_the_plain_mode(runtime):
    if runtime.mode != PLAIN:
        pytest.skip("namespaces: SIGTERM goes to PID 1 only, as with containerd")
    sandbox = await runtime.sandbox()
    cid = await runtime.run(sandbox, "main", command=["sh", "-c", "sleep 30 & sleep 31; wait"])
    status = await runtime.status(cid)
    children = await wait_for(lambda: psutil.Process(status.pid).children(), WAIT_S)

    await runtime.stop(cid, timeout_s=10)

    status = await runtime.status(cid)
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 143, "Error")
    assert status.finished_at >= status.started_at > 0
    assert not alive(status.pid)
    assert not any(alive(c.pid) for c in children)


async def test_a_container_ignoring_sigterm_is_killed_after_the_timeout(runtime):
    sandbox = await runtime.sandbox()
    cid = await runtime.run(sandbox, "stubborn",
                            command=["sh", "-c", "trap '' TERM; echo ready; sleep 30"])
    await runtime.wait_log(cid, "ready")

    started = time.monotonic()
    await runtime.stop(cid, timeout_s=0.5)
    waited_s = time.monotonic() - started

    status = await runtime.status(cid)
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 137, "Error")
    assert waited_s >= 0.5, "SIGKILL came before the grace period was over"
    assert not alive(status.pid)


@pytest.mark.parametrize("script, exit_code, reason, modes", [
    ("exit 0", 0, "Completed", MODES),
    ("exit 3", 3, "Error", MODES),
    ("kill -KILL $$", 137, "Error", (PLAIN,)),
    ("kill -TERM $$", 143, "Error", (PLAIN,)),
    # PID 1 of a namespace: a signal it has no handler for is not delivered
    # from inside the namespace (Docker and Kubernetes behave the same).
    ("kill -KILL $$; kill -TERM $$; exit 4", 4, "Error", (NAMESPACES,)),
    ("sh -c 'kill -TERM $$'", 143, "Error", MODES),
], ids=["exit-0", "exit-3", "killed", "terminated", "pid-1-ignores-its-own-signals",
        "child-terminated"])
async def test_exit_codes_and_reasons(runtime, script, exit_code, reason, modes):
    if runtime.mode not in modes:
        pytest.skip(f"not a case of the {runtime.mode} mode")
    sandbox = await runtime.sandbox()
    cid = await runtime.run(sandbox, "job", command=["sh", "-c", script])
    status = await runtime.wait_state(cid, pb.CONTAINER_EXITED)
    assert (status.exit_code, status.reason) == (exit_code, reason)
    assert status.finished_at >= status.started_at


@pytest.mark.parametrize("isolation", MODES)
@pytest.mark.parametrize("mode, message", [
    ("auto", "the kernel's OOM killer killed"),   # the memory cgroup, where it can be made
    ("none", "exceeded the limit of 52428800 bytes"),   # the RSS watch
], ids=["cgroup", "rss-watch"])
async def test_memory_limit_kills_the_container_as_oomkilled(tmp_path, mode, message, isolation):
    async with running_runtime(tmp_path, ("--cgroups", mode), mode=isolation) as runtime:
        version = await runtime.stub.Version(pb.VersionRequest(), timeout=RPC_TIMEOUT_S)
        if mode == "auto" and "memory" not in version.cgroup_controllers:
            if os.geteuid() != 0:
                pytest.skip(f"needs a runtime run as root (or a memory cgroup delegated to uid "
                            f"{os.geteuid()}): the kernel's OOM kill; the RSS watch case runs")
            message = "exceeded the limit of 52428800 bytes"  # no writable memory cgroup here
        await _memory_hog_is_oomkilled(runtime, message)


async def test_limits_no_cgroup_enforces_are_stated(runtime):
    version = await runtime.stub.Version(pb.VersionRequest(), timeout=RPC_TIMEOUT_S)
    if {"memory", "cpu"} <= set(version.cgroup_controllers):
        pytest.skip("this runtime enforces both limits with cgroups: nothing to state")
    sandbox = await runtime.sandbox()
    config = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="limited"),
                                image=pb.ImageSpec(image="busybox"), command=["sleep", "60"],
                                memory_limit_bytes=50 * MiB, cpu_limit_millis=200)
    reply = await runtime.stub.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sandbox, config=config), timeout=RPC_TIMEOUT_S)
    said = " | ".join(reply.warnings)
    assert "approximated (no writable" in said, said
    if not version.cgroup_controllers and os.geteuid() != 0:
        assert f"the runtime runs as uid {os.geteuid()} and no cgroup is delegated" in said, said


async def _memory_hog_is_oomkilled(runtime, message: str) -> None:
    sandbox = await runtime.sandbox()
    program = ("import time\n"
               "block = b'x' * (200 << 20)\n"   # written, so resident
               "print('allocated', flush=True)\n"
               "time.sleep(60)\n")
    cid = await runtime.run(sandbox, "hog", "python:3.11", command=["python3", "-c", program],
                            memory_limit_bytes=50 * MiB)
    status = await runtime.wait_state(cid, pb.CONTAINER_EXITED)
    assert (status.exit_code, status.reason) == (137, "OOMKilled")
    assert message in status.message and "52428800 bytes" in status.message


async def test_exec_sync_runs_in_the_container_environment(runtime):
    ip = pod_ip()
    sandbox = await runtime.sandbox(ip=ip)
    cid = await runtime.run(sandbox, "main", command=["sleep", "30"], env={"GREETING": "hi"})

    reply = await runtime.exec(cid, ["sh", "-c", "echo $GREETING $POD_IP; echo oops >&2; exit 4"])
    assert (reply.stdout, reply.stderr, reply.exit_code) == (f"hi {ip}\n".encode(), b"oops\n", 4)

    missing = await runtime.exec(cid, ["no-such-program"])
    assert missing.exit_code == 126
    assert b'"no-such-program": executable file not found in $PATH' in missing.stderr

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.exec(cid, ["sleep", "30"], timeout_s=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    await runtime.stop(cid, timeout_s=5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.exec(cid, ["true"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_restarted_runtime_adopts_live_containers_and_reports_lost_ones(runtime):
    sandbox = await runtime.sandbox()
    survivor = await runtime.run(sandbox, "survivor", command=["sleep", "30"])
    lost = await runtime.run(sandbox, "lost", command=["sh", "-c", "sleep 41 & sleep 31; wait"])
    later = await runtime.run(sandbox, "dies-later", command=["sleep", "32"])
    pids = {cid: (await runtime.status(cid)).pid for cid in (survivor, lost, later)}
    lost_children = await wait_for(lambda: len(c := psutil.Process(pids[lost]).children()) == 2
                                   and c, WAIT_S)

    await runtime.kill()
    assert alive(pids[survivor]), "killing the runtime must not kill containers"
    os.kill(pids[lost], signal.SIGKILL)  # its main process only
    wait_for_sync(lambda: not alive(pids[lost]), WAIT_S)
    if runtime.mode == PLAIN:
        assert all(alive(c.pid) for c in lost_children)  # the sleeps stay, until...
    else:  # ... the PID namespace ends with its PID 1
        await wait_for(lambda: not any(alive(c.pid) for c in lost_children), WAIT_S)
    await runtime.start()

    status = await runtime.status(survivor)
    assert (status.state, status.pid) == (pb.CONTAINER_RUNNING, pids[survivor])
    assert alive(pids[survivor])
    status = await runtime.status(lost)
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 255, "Unknown")
    await wait_for(lambda: not any(alive(c.pid) for c in lost_children), WAIT_S,
                   message="what was left of the lost container is killed")

    # Adopted processes are still watched: an exit is noticed, a stop still works.
    os.kill(pids[later], signal.SIGKILL)
    status = await runtime.wait_state(later, pb.CONTAINER_EXITED)
    assert (status.exit_code, status.reason) == (255, "Unknown")
    await runtime.stop(survivor, timeout_s=5)
    assert (await runtime.status(survivor)).state == pb.CONTAINER_EXITED
    assert not alive(pids[survivor])


async def test_sigterm_stops_the_runtime_but_not_its_containers(runtime):
    sandbox = await runtime.sandbox()
    cid = await runtime.run(sandbox, "main", command=["sleep", "30"])
    pid = (await runtime.status(cid)).pid

    assert await runtime.terminate() == 0
    assert alive(pid)
    await runtime.start()
    status = await runtime.status(cid)
    assert (status.state, status.pid) == (pb.CONTAINER_RUNNING, pid)


async def test_kuard_serves_probes_that_can_be_switched_to_fail(runtime):
    ip = pod_ip()
    port = free_port(ip)
    base = f"http://{ip}:{port}"
    sandbox = await runtime.sandbox("kuard", ip=ip)
    await runtime.run(sandbox, "kuard", "gcr.io/kuar-demo/kuard-amd64:blue",
                      command=["/kuard", f"--address={ip}:{port}"])

    async def get(path, method="GET"):
        return await asyncio.to_thread(http_get, base + path, method)

    assert await wait_for(lambda: get("/healthy"), WAIT_S) == (200, "ok")
    status, page = await get("/")
    assert status == 200 and 'id="version">blue<' in page and 'id="hostname">kuard<' in page
    assert (await get("/ready"))[0] == 200
    assert (await get("/healthy?fail=1"))[0] == 500
    assert (await get("/healthy"))[0] == 500
    assert (await get("/ready"))[0] == 200
    assert (await get("/healthy/ok", "POST"))[0] == 200
    assert (await get("/healthy"))[0] == 200
    env = json.loads((await get("/env"))[1])["env"]
    assert env["POD_IP"] == ip and env["KUARD_VERSION"] == "blue"


async def test_kuard_keygen_batch_runs_to_completion(runtime):
    ip = pod_ip()
    sandbox = await runtime.sandbox("batch", ip=ip)
    cid = await runtime.run(sandbox, "kuard", "gcr.io/kuar-demo/kuard-amd64:1",
                            command=["/kuard"],
                            args=["--keygen-enable", "--keygen-exit-on-complete",
                                  "--keygen-num-to-gen=3", f"--address={ip}:{free_port(ip)}"])
    status = await runtime.wait_state(cid, pb.CONTAINER_EXITED)
    assert (status.exit_code, status.reason) == (0, "Completed")
    log = pathlib.Path(status.log_path).read_text()
    assert "(ID 0 3/3) Item done: SHA256:" in log and "(ID 0 4/3)" not in log


async def test_kuard_with_only_args_fails_to_start_like_the_real_image(runtime):
    sandbox = await runtime.sandbox()
    cid = await runtime.create(sandbox, "kuard", "gcr.io/kuar-demo/kuard-amd64:blue",
                               args=["--keygen-enable"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.stub.StartContainer(pb.StartContainerRequest(container_id=cid),
                                          timeout=RPC_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    assert 'exec: "--keygen-enable": executable file not found in $PATH' in err.value.details()
    status = await runtime.status(cid)
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 128,
                                                               "StartError")


async def test_liveness_image_healthz_fails_after_a_while(runtime):
    ip = pod_ip()
    port = free_port(ip)
    sandbox = await runtime.sandbox(ip=ip)
    await runtime.run(sandbox, "liveness", "k8s.gcr.io/liveness",
                      args=["/server", "--port", str(port)],
                      env={"KUBEMU_LIVENESS_HEALTHY_S": "1"})
    url = f"http://{ip}:{port}/healthz"
    assert await wait_for(lambda: asyncio.to_thread(http_get, url), WAIT_S) == (200, "ok")
    async def failing():
        reply = await asyncio.to_thread(http_get, url)
        return reply if reply[0] == 500 else None
    status, body = await wait_for(failing, WAIT_S)
    assert body.startswith("error: ")


async def test_nginx_serves_the_welcome_page_or_a_mounted_docroot(runtime, tmp_path):
    ip = pod_ip()
    sandbox = await runtime.sandbox("nginx", ip=ip)
    port = free_port(ip)
    cid = await runtime.run(sandbox, "plain", "nginx:1.25", env={"NGINX_PORT": str(port)})
    status, body = await wait_for(lambda: asyncio.to_thread(http_get, f"http://{ip}:{port}/"),
                                  WAIT_S)
    assert status == 200 and "<title>Welcome to nginx!</title>" in body

    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("from a volume\n")
    port2 = free_port(ip)
    docroot = await runtime.run(sandbox, "docroot", "nginx", env={"NGINX_PORT": str(port2)},
                                mounts=[pb.Mount(container_path="/usr/share/nginx/html",
                                                 host_path=str(html), readonly=True)])
    # Plain: the stand-in finds its docroot through $KUBEMU_ROOTFS; namespaces: at its path.
    assert await wait_for(lambda: asyncio.to_thread(http_get, f"http://{ip}:{port2}/"),
                          WAIT_S) == (200, "from a volume\n")
    if runtime.mode == NAMESPACES:  # and the container sees it there
        reply = await runtime.exec(docroot, ["cat", "/usr/share/nginx/html/index.html"])
        assert (reply.exit_code, reply.stdout) == (0, b"from a volume\n")

    await runtime.stop(cid, timeout_s=5)
    status = await runtime.status(cid)
    assert (status.exit_code, status.reason) == (0, "Completed")
    assert '"GET / HTTP/1.1" 200' in pathlib.Path(status.log_path).read_text()


async def test_stats_report_memory_and_cpu_of_the_process_tree(runtime):
    sandbox = await runtime.sandbox()
    program = "import time\nblock = b'x' * (30 << 20)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    cid = await runtime.run(sandbox, "app", "python", command=["python3", "-c", program])
    await runtime.wait_log(cid, "ready")

    async def big_enough():
        reply = await runtime.stub.ContainerStats(pb.ContainerStatsRequest(container_id=cid),
                                                  timeout=RPC_TIMEOUT_S)
        return reply.stats if reply.stats.memory.rss_bytes > 30 * MiB else None
    stats = await wait_for(big_enough, WAIT_S)
    # psutil: both are the tree's RSS; a memory cgroup: usage minus inactive
    # file pages, which holds the anonymous block and the interpreter's pages.
    assert stats.memory.working_set_bytes >= 30 * MiB
    assert stats.cpu.usage_core_nano_seconds > 0
    assert stats.process_count == 1

    listed = await runtime.stub.ListContainerStats(pb.ListContainerStatsRequest(),
                                                   timeout=RPC_TIMEOUT_S)
    assert [s.attributes.id for s in listed.stats] == [cid]
    assert listed.stats[0].memory.rss_bytes > 0

    busy = await runtime.run(sandbox, "busy", command=["sh", "-c", "while :; do :; done"])

    async def burning():
        reply = await runtime.stub.ContainerStats(pb.ContainerStatsRequest(container_id=busy),
                                                  timeout=RPC_TIMEOUT_S)
        return reply.stats.cpu.usage_nano_cores
    assert await wait_for(burning, WAIT_S) > 0


async def test_mounts_working_dir_and_environment_of_the_plain_mode(runtime, tmp_path):
    if runtime.mode != PLAIN:
        pytest.skip("the plain mode's view ($KUBEMU_ROOTFS); the namespaces mode's is "
                    "test_container_view.py's")
    config = tmp_path / "config"
    config.mkdir()
    (config / "log_level").write_text("debug\n")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "run.sh").write_text("#!/bin/sh\necho script ran in $(pwd)\n")
    (scripts / "run.sh").chmod(0o755)
    ip = pod_ip()
    sandbox = await runtime.sandbox("mounts", ip=ip)
    mounts = [pb.Mount(container_path="/etc/config", host_path=str(config)),
              pb.Mount(container_path="/scripts", host_path=str(scripts))]

    cat = await runtime.run(sandbox, "cat", mounts=mounts, command=[
        "sh", "-c", 'cat etc/config/log_level; cat "$KUBEMU_ROOTFS/etc/config/log_level"; pwd'])
    status = await runtime.wait_state(cat, pb.CONTAINER_EXITED)
    rootfs = status.rootfs
    assert pathlib.Path(status.log_path).read_text() == f"debug\ndebug\n{rootfs}\n"
    assert not pathlib.Path("/etc/config/log_level").exists() or \
        pathlib.Path("/etc/config/log_level").read_text() != "debug\n"

    script = await runtime.run(sandbox, "script", mounts=mounts, command=["/scripts/run.sh"],
                               working_dir="/work")
    status = await runtime.wait_state(script, pb.CONTAINER_EXITED)
    assert status.exit_code == 0
    assert pathlib.Path(status.log_path).read_text() == f"script ran in {status.rootfs}/work\n"

    env = await runtime.run(sandbox, "env", command=["env"], env={"A": "1"})
    status = await runtime.wait_state(env, pb.CONTAINER_EXITED)
    seen = dict(line.split("=", 1) for line in pathlib.Path(status.log_path).read_text().split())
    assert set(seen) == {"A", "PATH", "HOSTNAME", "POD_IP", "HOME", "KUBEMU_ROOTFS"}
    assert (seen["A"], seen["HOSTNAME"], seen["POD_IP"]) == ("1", "mounts", ip)
    assert seen["KUBEMU_ROOTFS"] == status.rootfs
    assert seen["PATH"].endswith("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


async def test_previous_attempt_log_is_kept(runtime):
    sandbox = await runtime.sandbox()
    first = await runtime.run(sandbox, "app", command=["echo", "first"], attempt=0)
    first_status = await runtime.wait_state(first, pb.CONTAINER_EXITED)
    second = await runtime.run(sandbox, "app", command=["echo", "second"], attempt=1)
    second_status = await runtime.wait_state(second, pb.CONTAINER_EXITED)

    assert first_status.log_path.endswith("/app/0.log")
    assert second_status.log_path.endswith("/app/1.log")
    assert pathlib.Path(first_status.log_path).read_text() == "first\n"
    assert pathlib.Path(second_status.log_path).read_text() == "second\n"

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.create(sandbox, "app", command=["true"], attempt=1)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_stop_and_remove_sandbox_takes_its_containers_with_it(runtime):
    sandbox = await runtime.sandbox()
    cid = await runtime.run(sandbox, "main", command=["sleep", "30"])
    pid = (await runtime.status(cid)).pid
    pod_dir = pathlib.Path((await runtime.stub.PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox), timeout=RPC_TIMEOUT_S)).status.pod_dir)

    await runtime.stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox),
                                      timeout=RPC_TIMEOUT_S)
    status = await runtime.status(cid)
    assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 137)
    assert not alive(pid)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.create(sandbox, "late", command=["true"])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    await runtime.stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox),
                                        timeout=RPC_TIMEOUT_S)
    await runtime.stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox),
                                        timeout=RPC_TIMEOUT_S)  # idempotent
    listed = await runtime.stub.ListContainers(pb.ListContainersRequest(), timeout=RPC_TIMEOUT_S)
    assert list(listed.containers) == []
    assert not pod_dir.exists()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.status(cid)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_pause_image_exits_0_on_sigterm(runtime):
    sandbox = await runtime.sandbox()
    cid = await runtime.run(sandbox, "pause", "registry.k8s.io/pause:3.9")
    pid = (await runtime.status(cid)).pid
    await wait_for(lambda: catches(pid, signal.SIGTERM), WAIT_S)  # Python has started up
    await runtime.stop(cid, timeout_s=5)
    status = await runtime.status(cid)
    assert (status.exit_code, status.reason) == (0, "Completed")


async def test_images_are_pulled_through_the_catalog(runtime):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.stub.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="foo:1")),
                                     timeout=RPC_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == ('failed to pull image "foo:1": '
                                   'image not found in the kubemu catalog')

    spec = pb.ImageSpec(image="nginx:1.25")
    before = await runtime.stub.ImageStatus(pb.ImageStatusRequest(image=spec),
                                            timeout=RPC_TIMEOUT_S)
    assert not before.HasField("image")
    pulled = await runtime.stub.PullImage(pb.PullImageRequest(image=spec), timeout=RPC_TIMEOUT_S)
    assert pulled.image_ref.startswith("docker.io/library/nginx@sha256:")
    after = await runtime.stub.ImageStatus(pb.ImageStatusRequest(image=spec),
                                           timeout=RPC_TIMEOUT_S)
    assert list(after.image.repo_tags) == ["docker.io/library/nginx:1.25"]
    assert f"docker.io/library/nginx@{after.image.id}" == pulled.image_ref

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await runtime.create(await runtime.sandbox(), "x", image="foo:1")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_runtime_refuses_a_root_already_in_use(tmp_path):
    first = Proc([sys.executable, "-m", "kubelet.runtime", "--root", str(tmp_path / "root"),
                  "--socket", str(tmp_path / "a.sock")], tmp_path / "a.out").start()
    try:
        wait_for_sync(lambda: (tmp_path / "a.sock").exists(), START_TIMEOUT_S)
        second = Proc([sys.executable, "-m", "kubelet.runtime", "--root", str(tmp_path / "root"),
                       "--socket", str(tmp_path / "b.sock")], tmp_path / "b.out").start()
        second.popen.wait(START_TIMEOUT_S)
        assert second.popen.returncode == 1
        assert "another runtime is using" in (tmp_path / "b.out").read_text()
    finally:
        first.kill()
        cluster_home.remove_cgroup_parents(cluster_home.runtime_cgroup_parents(tmp_path / "root"))
    assert not first.alive()
    assert not cluster_home.runtime_cgroup_parents(tmp_path / "root")


def modes_under(root: pathlib.Path) -> dict[str, int]:
    """Relative path -> permission bits of everything under root (links skipped)."""
    found = {".": stat.S_IMODE(root.lstat().st_mode)}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = pathlib.Path(directory) / name
            if not path.is_symlink():
                found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.parametrize("mode", MODES)
async def test_everything_the_runtime_writes_is_private_under_a_022_umask(tmp_path, mode):
    async with running_runtime(tmp_path, umask=0o022, mode=mode) as runtime:
        sandbox = await runtime.sandbox(log_directory=str(runtime.root / "logs" / "pod"))
        cid = await runtime.run(sandbox, "main", "python:3.12",
                                command=["sh", "-c", "echo secret; sleep 30"])
        await runtime.wait_log(cid, "secret")
        found = modes_under(runtime.root)
        assert stat.S_IMODE(runtime.socket.stat().st_mode) == 0o600
    scripts = {p for p in found if "/bin/" in p and p.startswith("images/")}
    # namespaces mode: what a container's users (unprivileged on the host) must
    # reach is open inside directories that are not: the pods' /dev/shm, and
    # the image programs (mounted into containers).
    open_inside = {p: m for p, m in found.items() if mode == NAMESPACES and (
        (p.startswith("pods/") and p.endswith("/shm") and m == 0o1777) or
        (p.startswith("images/") and (p.endswith("/bin") or p in scripts) and m == 0o755))}
    wrong = {p: oct(m) for p, m in found.items() if p not in open_inside and
             m != (0o700 if (runtime.root / p).is_dir() or p in scripts else 0o600)}
    assert not wrong, wrong
    kinds = {p.split("/")[0] for p in found}
    assert {"state", "pods", "containers", "logs", "runtime.lock"} <= kinds, sorted(kinds)
    assert any(p.startswith("state/containers/") for p in found)
    assert any(p.endswith("main/0.log") for p in found)


async def test_a_failing_monitor_loop_is_reported_not_serving_and_recovers(tmp_path):
    faults = tmp_path / "faults"
    faults.mkdir()
    async with running_runtime(tmp_path, ("--fault-dir", str(faults))) as runtime:
        health = health_pb2_grpc.HealthStub(runtime.channel)

        async def health_is(wanted: int):
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            return reply.status == wanted or NotYet(str(reply.status))
        serving, down = (health_pb2.HealthCheckResponse.SERVING,
                         health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await health_is(serving)
        sandbox = await runtime.sandbox()
        cid = await runtime.run(sandbox, "main", command=["sleep", "30"])
        (faults / "runtime-monitor").touch()
        await wait_for(lambda: health_is(down), WAIT_S, message="NOT_SERVING")
        log = runtime.log_tail(200)
        assert '"loop": "runtime-monitor"' in log and "injected fault" in log
        (faults / "runtime-monitor").unlink()
        await wait_for(lambda: health_is(serving), WAIT_S, message="SERVING again")

        # Sampling goes on: the container's stats move forward again.
        async def sampled_after(stamp: int):
            reply = await runtime.stub.ContainerStats(
                pb.ContainerStatsRequest(container_id=cid), timeout=RPC_TIMEOUT_S)
            return reply.stats.cpu.timestamp > stamp or NotYet(str(reply.stats.cpu.timestamp))
        first = await runtime.stub.ContainerStats(pb.ContainerStatsRequest(container_id=cid),
                                                  timeout=RPC_TIMEOUT_S)
        await wait_for(lambda: sampled_after(first.stats.cpu.timestamp), WAIT_S,
                       message="sampled again")
