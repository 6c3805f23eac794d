"""What a container sees in the namespaces mode, through the runtime alone
(`python -m kubelet.runtime --isolation namespaces`): mounts at absolute
paths, read-only enforced, subPath files, its own /tmp, hostname, PID 1,
user, environment, read-only root, and the masks. Skipped, saying why, where
this machine cannot run the namespaces mode."""
from __future__ import annotations

import os
import pathlib

import pytest

from kubemu.runtime.v1 import runtime_pb2 as pb
from tests.component.runtime_harness import (NAMESPACES, RPC_TIMEOUT_S, WAIT_S, running_runtime,
                                             without_kubemu_binds)


@pytest.fixture
async def runtime(tmp_path):
    async with running_runtime(tmp_path, mode=NAMESPACES) as rt:
        yield rt


async def sh(runtime, cid: str, script: str):
    reply = await runtime.exec(cid, ["sh", "-c", script])
    return reply.exit_code, reply.stdout.decode(), reply.stderr.decode()


async def test_mounts_at_absolute_paths_read_only_enforced_and_sub_path_files(
        runtime, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("A\n")
    config = tmp_path / "config.ini"
    config.write_text("x=1\n")
    sandbox = await runtime.sandbox("view")
    cid = await runtime.run(sandbox, "main", command=["sleep", "3600"], mounts=[
        pb.Mount(container_path="/srv/data", host_path=str(data), readonly=False),
        pb.Mount(container_path="/etc/secret-volume", host_path=str(data), readonly=True),
        pb.Mount(container_path="/etc/app/config.ini", host_path=str(config), readonly=True)])
    await runtime.wait_state(cid, pb.CONTAINER_RUNNING)

    assert await sh(runtime, cid, "cat /srv/data/a.txt /etc/app/config.ini") == \
        (0, "A\nx=1\n", "")
    code, _, err = await sh(runtime, cid, "echo x > /etc/secret-volume/b")
    assert code != 0 and "Read-only file system" in err
    assert (await sh(runtime, cid, "echo B > /srv/data/b.txt"))[0] == 0
    assert (data / "b.txt").read_text() == "B\n"  # the volume is the host directory
    assert not pathlib.Path("/srv/data/a.txt").exists() or \
        pathlib.Path("/srv/data").resolve() != data  # nothing made at the host's path


async def test_its_own_tmp_hostname_pid_1_and_environment(runtime, tmp_path):
    sandbox = await runtime.sandbox("viewer")
    cid = await runtime.run(sandbox, "main", command=["sh", "-c", "touch /tmp/mine; sleep 3600"],
                            env={"GREETING": "hi"})
    await runtime.wait_state(cid, pb.CONTAINER_RUNNING)
    code, out, err = await sh(runtime, cid, "ls /tmp; hostname; cat /etc/hostname; "
                                            "read pid rest < /proc/1/stat; echo $pid")
    assert code == 0, err
    assert without_kubemu_binds(out.split()) == ["mine", "viewer", "viewer", "1"]
    assert not os.path.exists("/tmp/mine")
    code, out, _ = await sh(runtime, cid, "env | sort")
    names = {line.partition("=")[0] for line in out.splitlines()}
    assert names <= {"GREETING", "PATH", "HOSTNAME", "POD_IP", "HOME", "PWD", "SHLVL", "_"}, names
    assert not any(n.startswith("KUBEMU") for n in names)


ROOTLESS = os.geteuid() != 0


async def test_user_and_groups_through_the_user_namespace(runtime):
    sandbox = await runtime.sandbox("user")
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="main"), image=pb.ImageSpec(image="busybox"),
        command=["sleep", "3600"],
        security_context=pb.ContainerSecurityContext(run_as_user=1000, run_as_group=3000,
                                                     supplemental_groups=[2000]))
    reply = await runtime.stub.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sandbox, config=config),
        timeout=RPC_TIMEOUT_S)
    cid = reply.container_id
    await runtime.stub.StartContainer(pb.StartContainerRequest(container_id=cid),
                                      timeout=RPC_TIMEOUT_S)
    await runtime.wait_state(cid, pb.CONTAINER_RUNNING)
    code, out, err = await sh(runtime, cid, "id -u; id -g; id -G; echo x > /tmp/mine; "
                                            "stat -c %u /tmp/mine")
    assert code == 0, err
    uid, gid, groups, owner = out.splitlines()
    assert (uid, gid, owner) == ("1000", "3000", "1000")
    if not ROOTLESS:
        assert "2000" in groups.split() and not reply.isolation_warnings
        return
    # Rootless: 1000 inside is the runtime's own user outside; no other groups.
    assert "2000" not in groups.split()
    assert any("supplementalGroups/fsGroup [2000] are not applied" in w and "rootless" in w
               for w in reply.isolation_warnings), reply.isolation_warnings


async def test_read_only_root_and_what_is_masked(runtime, tmp_path):
    sandbox = await runtime.sandbox("locked")
    config = tmp_path / "config"
    config.mkdir()
    (config / "Corefile").write_text(".:53 {}\n")
    # A volume at a path the root does not have (CoreDNS's /etc/coredns): its
    # mount point is made before the root turns read-only, as runc does.
    cid = await runtime.run(
        sandbox, "main", command=["sleep", "3600"],
        mounts=[pb.Mount(container_path="/etc/coredns", host_path=str(config), readonly=True)],
        security_context=pb.ContainerSecurityContext(readonly_rootfs=True, no_new_privs=True))
    await runtime.wait_state(cid, pb.CONTAINER_RUNNING)
    assert (await sh(runtime, cid, "cat /etc/coredns/Corefile"))[:2] == (0, ".:53 {}\n")
    for path in ("/usr/new-file", "/etc/new-file"):
        code, _, err = await sh(runtime, cid, f"touch {path}")
        assert code != 0 and "Read-only file system" in err, path
    # /tmp too, as with Kubernetes (pods mount an emptyDir there); /dev/shm stays writable.
    assert (await sh(runtime, cid, "touch /tmp/no"))[0] != 0
    assert (await sh(runtime, cid, "touch /dev/shm/ok"))[0] == 0
    code, out, _ = await sh(runtime, cid, f"ls -A {runtime.root}")
    assert out.strip() == ""  # the runtime's root is masked
    code, out, _ = await sh(runtime, cid, "grep NoNewPrivs /proc/self/status")
    assert out.split() == ["NoNewPrivs:", "1"]
    code, _, err = await sh(runtime, cid, "cat /etc/shadow")
    assert code != 0  # the container's root is an unprivileged user on the host


async def test_the_writable_layer_goes_with_the_container(runtime):
    sandbox = await runtime.sandbox("layer")
    first = await runtime.run(sandbox, "main", command=["sh", "-c",
                                                        "echo x > /etc/made-here; sleep 3600"])
    await runtime.wait_state(first, pb.CONTAINER_RUNNING)
    assert (await sh(runtime, first, "cat /etc/made-here"))[:2] == (0, "x\n")
    assert not os.path.exists("/etc/made-here")
    await runtime.stop(first, timeout_s=0)
    second = await runtime.run(sandbox, "main", command=["sleep", "3600"], attempt=1)
    await runtime.wait_state(second, pb.CONTAINER_RUNNING, WAIT_S)
    code, _, _ = await sh(runtime, second, "cat /etc/made-here")
    assert code != 0  # a new instance starts clean, as from its image
