"""What a container sees, end to end (issue 8): the Kubernetes docs' manifests
applied unchanged with the CLI on a real one-node cluster with a scheduler,
in the node's default isolation mode (namespaces where this machine allows
it). Tests that need the namespaces mode skip, saying so, only where the
node runs in the plain mode; the last test starts a cluster of its own in
the plain mode and checks that its gaps are stated (Warning events).
"""
from __future__ import annotations

import asyncio
import os
import pathlib
import secrets
import textwrap
import urllib.request

import psutil
import pytest

from deploy import components as comp
from deploy.supervisor import Cluster
from kubemu.client.clientset import Client
from kubemu.client.wait import wait_for
from tests.e2e.test_kubelet import (serving, NODE, WAIT_S, ClusterThread, Seen, cli, container_status,
                                    delete_pods, fast_node_kinds, isolation, obj, pod_json,
                                    wait_event, wait_pod)
from tests.component.runtime_harness import without_kubemu_binds

pytestmark = pytest.mark.e2e

NAMESPACES = "namespaces"


def scheduling_cluster(home: pathlib.Path, node_kinds=None) -> ClusterThread:
    """etcd, the apiserver and a scheduler (the docs' pods have no nodeName), one node."""
    running_cluster = ClusterThread(home, node_kinds=node_kinds)
    running_cluster.cluster = Cluster(home, nodes=1, kinds=(comp.ETCD_KIND, comp.APISERVER_KIND,
                                                            comp.SCHEDULER_KIND),
                                      node_kinds=node_kinds or fast_node_kinds(),
                                      progress=lambda line: None)
    return running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(scheduling_cluster(tmp_path_factory.mktemp("iso-home")))


@pytest.fixture
async def namespaces_mode(api):
    mode = await isolation(api)
    if mode != NAMESPACES:
        pytest.skip(f"needs the namespaces isolation mode; node {NODE} runs in the {mode} mode "
                    f"(see its annotation kubemu.io/isolation-reason)")


# The test's cluster runs as this process's user: rootless when it is not root.
ROOTLESS = os.geteuid() != 0
LOW_PORT = ("nginx listens on port 80, below net.ipv4.ip_unprivileged_port_start, which a "
            "rootless node cannot bind (test_a_rootless_node_says_why_port_80_fails)")


def needs_root(why: str):
    return pytest.mark.skipif(ROOTLESS, reason=f"needs a cluster run as root: {why}")


async def apply(cluster, tmp_path: pathlib.Path, ns: str, manifest: str) -> None:
    path = tmp_path / f"m-{secrets.token_hex(3)}.yaml"
    path.write_text(textwrap.dedent(manifest))
    out = await cli(cluster, "apply", "-n", ns, "-f", str(path))
    assert out.returncode == 0, out.stderr


async def kexec(cluster, ns: str, pod: str, *command: str, container: str = ""):
    extra = ["-c", container] if container else []
    return await cli(cluster, "exec", "-n", ns, pod, *extra, "--", *command)


def http_get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return None


def running(pod: dict) -> bool:
    """Running, every container of it too."""
    statuses = pod["status"].get("containerStatuses", [])
    return pod["status"].get("phase") == "Running" and bool(statuses) and \
        all("running" in s.get("state", {}) for s in statuses)


# ---------------------------------------------------------------- the node's mode

async def test_node_reports_its_isolation_mode(cluster, api):
    node = await api.get("nodes", NODE)
    mode = node.metadata.labels["kubemu.io/isolation"]
    assert mode in ("namespaces", "plain")
    assert node.metadata.annotations["kubemu.io/isolation"] == mode
    assert "kubemu.io/isolation-reason" in node.metadata.annotations
    out = await cli(cluster, "status")
    assert out.returncode == 0, out.stderr
    assert f"node {NODE}: isolation {mode}" in out.stdout


# ---------------------------------------------------------------- volumes

TWO_CONTAINERS = """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: two-containers
    spec:

      restartPolicy: Never

      volumes:
      - name: shared-data
        emptyDir: {}

      containers:

      - name: nginx-container
        image: nginx
        volumeMounts:
        - name: shared-data
          mountPath: /usr/share/nginx/html

      - name: debian-container
        image: debian
        volumeMounts:
        - name: shared-data
          mountPath: /pod-data
        command: ["/bin/sh"]
        args: ["-c", "echo Hello from the debian container > /pod-data/index.html"]
"""


@needs_root(LOW_PORT)
async def test_two_containers_share_an_empty_dir_at_absolute_paths(
        cluster, api, ns, tmp_path, namespaces_mode):
    await apply(cluster, tmp_path, ns, TWO_CONTAINERS)

    def debian_done(pod):
        state = container_status(pod, "debian-container").get("state", {})
        return state.get("terminated", {}).get("exitCode") == 0
    pod = await wait_pod(api, ns, "two-containers", debian_done, what="debian wrote the page")
    out = await kexec(cluster, ns, "two-containers", "cat", "/usr/share/nginx/html/index.html",
                      container="nginx-container")
    assert (out.returncode, out.stdout) == (0, "Hello from the debian container\n"), out.stderr
    # Port 80 of the pod IP, bound for the unprivileged container by the runtime
    # (kubelet/runtime/lowports.py).
    ip = pod["status"]["podIP"]
    got = await wait_for(lambda: asyncio.to_thread(http_get, f"http://{ip}/"), WAIT_S)
    assert got == (200, "Hello from the debian container\n")


CONFIG_POD = """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: dapi-test-pod
    spec:
      containers:
        - name: test-container
          image: registry.k8s.io/busybox
          command: [ "/bin/sh", "-c", "ls /etc/config/" ]
          volumeMounts:
          - name: config-volume
            mountPath: /etc/config
      volumes:
        - name: config-volume
          configMap:
            # Provide the name of the ConfigMap containing the files you want
            # to add to the container
            name: special-config
      restartPolicy: Never
"""

SECRET_POD = """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: secret-test-pod
    spec:
      containers:
        - name: test-container
          image: busybox
          command: ["sh", "-c", "sleep 3600"]
          volumeMounts:
            # name must match the volume name below
            - name: secret-volume
              mountPath: /etc/secret-volume
              readOnly: true
      # The secret data is exposed to Containers in the Pod through a Volume.
      volumes:
        - name: secret-volume
          secret:
            secretName: test-secret
"""


async def test_configmap_and_secret_volumes_at_their_paths_the_secret_read_only(
        cluster, api, ns, tmp_path, namespaces_mode):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: special-config
        data:
          SPECIAL_LEVEL: very
          SPECIAL_TYPE: charm
        """)
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Secret
        metadata:
          name: test-secret
        data:
          username: bXktYXBw
          password: Mzk1MjgkdmRnN0pi
        """)
    await apply(cluster, tmp_path, ns, CONFIG_POD)
    await wait_pod(api, ns, "dapi-test-pod", lambda p: p["status"].get("phase") == "Succeeded")
    logs = await cli(cluster, "logs", "-n", ns, "dapi-test-pod")
    assert logs.stdout.split() == ["SPECIAL_LEVEL", "SPECIAL_TYPE"], logs.stderr

    await apply(cluster, tmp_path, ns, SECRET_POD)
    await wait_pod(api, ns, "secret-test-pod", running)
    out = await kexec(cluster, ns, "secret-test-pod", "cat", "/etc/secret-volume/username",
                      "/etc/secret-volume/password")
    assert (out.returncode, out.stdout) == (0, "my-app39528$vdg7Jb"), out.stderr
    # The atomic-update layout is kept: the keys are links into ..data.
    out = await kexec(cluster, ns, "secret-test-pod", "readlink", "/etc/secret-volume/username")
    assert out.stdout.strip() == "..data/username", out.stderr
    out = await kexec(cluster, ns, "secret-test-pod", "sh", "-c",
                      "echo x > /etc/secret-volume/new")
    assert out.returncode != 0
    assert "Read-only file system" in out.stderr


LIVENESS_EXEC = """\
    apiVersion: v1
    kind: Pod
    metadata:
      labels:
        test: liveness
      name: liveness-exec
    spec:
      containers:
      - name: liveness
        image: registry.k8s.io/busybox
        args:
        - /bin/sh
        - -c
        - touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 600
        livenessProbe:
          exec:
            command:
            - cat
            - /tmp/healthy
          initialDelaySeconds: 5
          periodSeconds: 5
"""


async def test_two_liveness_examples_keep_separate_tmps(cluster, api, ns, tmp_path,
                                                         namespaces_mode):
    other = f"{ns}-b"
    await api.create(obj({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}))
    try:
        await apply(cluster, tmp_path, ns, LIVENESS_EXEC)
        await apply(cluster, tmp_path, other, LIVENESS_EXEC)
        for namespace in (ns, other):
            await wait_pod(api, namespace, "liveness-exec", running)
        marker = f"only-{secrets.token_hex(4)}"
        out = await kexec(cluster, ns, "liveness-exec", "touch", f"/tmp/{marker}")
        assert out.returncode == 0, out.stderr
        mine = await kexec(cluster, ns, "liveness-exec", "ls", "/tmp")
        theirs = await kexec(cluster, other, "liveness-exec", "ls", "/tmp")
        assert sorted(without_kubemu_binds(mine.stdout.split())) == sorted(
            ["healthy", marker]), mine.stderr
        assert without_kubemu_binds(theirs.stdout.split()) == ["healthy"], theirs.stderr
        assert not pathlib.Path("/tmp", marker).exists()  # nor the host's
        out = await kexec(cluster, other, "liveness-exec", "rm", "/tmp/healthy")
        assert out.returncode == 0, out.stderr
        # That one fails its probe and restarts on its own, into a fresh /tmp;
        # the other does not (its own file goes only 30 s after its start,
        # three probe periods later than this one's).
        await wait_event(api, other, "liveness-exec", "Unhealthy", timeout_s=WAIT_S)
        events = await cli(cluster, "get", "events", "-n", ns)
        assert "Unhealthy" not in events.stdout

        def restarted(pod: dict) -> bool:
            status = container_status(pod, "liveness")
            return status.get("restartCount", 0) >= 1 and "running" in status.get("state", {})
        # Three failed probes, then the kill: sh as PID 1 ignores SIGTERM, so
        # it takes the pod's 30 s grace period, as in Kubernetes.
        await wait_pod(api, other, "liveness-exec", restarted, timeout_s=30 + 3 * WAIT_S,
                       what="the probed pod restarted")
        first = await wait_pod(api, ns, "liveness-exec", lambda pod: True)
        assert container_status(first, "liveness").get("restartCount") == 0
        fresh = await kexec(cluster, other, "liveness-exec", "ls", "/tmp")
        assert without_kubemu_binds(fresh.stdout.split()) == ["healthy"], fresh.stderr
        mine = await kexec(cluster, ns, "liveness-exec", "ls", "/tmp")
        assert marker in mine.stdout.split(), mine.stderr  # (healthy goes at 30 s)
    finally:
        await delete_pods(api, other)


# ---------------------------------------------------------------- the pod's view

async def test_hostname_hosts_and_resolv_conf_are_the_pods(cluster, api, ns, tmp_path,
                                                           namespaces_mode):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: hostaliases-pod
        spec:
          restartPolicy: Never
          hostAliases:
          - ip: "127.0.0.1"
            hostnames:
            - "foo.local"
            - "bar.local"
          - ip: "10.1.2.3"
            hostnames:
            - "foo.remote"
            - "bar.remote"
          containers:
          - name: cat-hosts
            image: busybox:1.28
            command:
            - sh
            - -c
            - hostname; cat /etc/hostname; cat /etc/hosts; test -s /etc/resolv.conf && echo resolv
        """)
    pod = await wait_pod(api, ns, "hostaliases-pod",
                         lambda p: p["status"].get("phase") == "Succeeded")
    logs = (await cli(cluster, "logs", "-n", ns, "hostaliases-pod")).stdout
    lines = logs.splitlines()
    assert lines[:2] == ["hostaliases-pod", "hostaliases-pod"]
    assert f"{pod['status']['podIP']}\thostaliases-pod" in lines
    assert "# Entries added by HostAliases." in lines
    assert "127.0.0.1\tfoo.local\tbar.local" in lines
    assert "10.1.2.3\tfoo.remote\tbar.remote" in lines
    assert lines[-1] == "resolv"


async def test_ps_shows_only_the_pods_processes_the_first_being_pid_1(
        cluster, api, ns, tmp_path, namespaces_mode):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: ps-pod
        spec:
          containers:
          - name: main
            image: busybox
            command: ["sh", "-c", "sleep 3600"]
        """)
    await wait_pod(api, ns, "ps-pod", running)
    out = await kexec(cluster, ns, "ps-pod", "ps", "-eo", "pid,args")
    assert out.returncode == 0, out.stderr
    rows = [line.split(None, 1) for line in out.stdout.splitlines()[1:]]
    assert rows[0] == ["1", "sh -c sleep 3600"], out.stdout
    assert len(rows) <= 4, out.stdout  # sh, its sleep, and the exec'd ps (with its launcher)
    assert all("kubelet" not in args and "etcd" not in args for _, args in rows), out.stdout


@needs_root(LOW_PORT)
async def test_share_process_namespace_gives_the_pod_one_pid_namespace(
        cluster, api, ns, tmp_path, namespaces_mode):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: nginx
        spec:
          shareProcessNamespace: true
          containers:
          - name: nginx
            image: nginx
          - name: shell
            image: busybox:1.28
            command: ["sleep", "3600"]
            securityContext:
              capabilities:
                add:
                - SYS_PTRACE
            stdin: true
            tty: true
        """)
    await wait_pod(api, ns, "nginx", running)
    out = await kexec(cluster, ns, "nginx", "ps", "-eo", "pid,args", container="shell")
    assert out.returncode == 0, out.stderr
    rows = [line.split(None, 1) for line in out.stdout.splitlines()[1:]]
    assert rows[0][0] == "1" and "sigwaitinfo" in rows[0][1], out.stdout  # the pod's pause
    commands = [args for _, args in rows]
    assert "sleep 3600" in commands, out.stdout
    assert any("nginx" in args for args in commands), out.stdout
    # Each container still has its own root: the shell does not see nginx's files
    # through its own /, only through /proc/<pid>/root as in Kubernetes.
    out = await kexec(cluster, ns, "nginx", "hostname", container="shell")
    assert out.stdout == "nginx\n"


async def test_run_as_user_and_group_through_the_user_namespace(cluster, api, ns, tmp_path,
                                                                namespaces_mode):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: security-context-demo
        spec:
          securityContext:
            runAsUser: 1000
            runAsGroup: 3000
            fsGroup: 2000
          volumes:
          - name: sec-ctx-vol
            emptyDir: {}
          containers:
          - name: sec-ctx-demo
            image: busybox:1.28
            command: [ "sh", "-c", "sleep 1h" ]
            volumeMounts:
            - name: sec-ctx-vol
              mountPath: /data/demo
            securityContext:
              allowPrivilegeEscalation: false
        """)
    await wait_pod(api, ns, "security-context-demo", running)
    out = await kexec(cluster, ns, "security-context-demo", "sh", "-c",
                      "id -u; id -g; id -G; grep NoNewPrivs /proc/self/status")
    assert out.returncode == 0, out.stderr
    uid, gid, groups, nnp = out.stdout.splitlines()
    assert (uid, gid) == ("1000", "3000")
    assert nnp.split() == ["NoNewPrivs:", "1"]
    # The same user on the host is an unprivileged one, not 1000 of the host
    # (rootless: the cluster's own user, the one id its user namespaces map).
    pid = next(p.pid for p in psutil.process_iter(["cmdline"])
               if p.info["cmdline"] == ["sleep", "1h"])
    assert psutil.Process(pid).uids().real not in (0, 1000)
    if not ROOTLESS:
        assert "2000" in groups.split()
        return
    assert psutil.Process(pid).uids().real == os.geteuid()
    assert "2000" not in groups.split()  # setgroups is denied rootless: said in an event
    event = await wait_event(api, ns, "security-context-demo", "IsolationNotEnforced",
                             "supplementalGroups/fsGroup [2000] are not applied")
    assert "rootless" in event["message"]


@pytest.mark.skipif(not ROOTLESS, reason="a rootless node's gaps (this cluster runs as root)")
async def test_a_rootless_node_says_why_port_80_fails(cluster, api, ns, tmp_path,
                                                      namespaces_mode):
    node = await api.get("nodes", NODE)
    reason = node.metadata.annotations["kubemu.io/isolation-reason"]
    assert reason.startswith(f"rootless (uid {os.geteuid()}): one id mapped"), reason
    assert "no supplementalGroups/fsGroup" in reason, reason
    assert "ports below 1024 cannot be bound" in reason, reason
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: web
        spec:
          containers:
          - name: nginx
            image: nginx
        """)

    async def said():
        out = await cli(cluster, "logs", "-n", ns, "web")
        return out.stdout if "cannot listen" in out.stdout else ""
    log = await wait_for(said, WAIT_S, message="nginx's log says why it cannot listen")
    assert ":80: Permission denied (port 80 is below net.ipv4.ip_unprivileged_port_start" in log

    def ended(pod):
        status = container_status(pod, "nginx")
        return status.get("state", {}).get("terminated") or \
            status.get("lastState", {}).get("terminated")
    pod = await wait_pod(api, ns, "web", ended, what="nginx ended")
    assert ended(pod)["exitCode"] == 1, ended(pod)


async def test_run_as_non_root_with_a_root_image_is_a_config_error(cluster, api, ns, tmp_path):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: nonroot
        spec:
          securityContext:
            runAsNonRoot: true
          containers:
          - name: main
            image: busybox
            command: ["sleep", "3600"]
        """)

    def config_error(pod):
        waiting = container_status(pod).get("state", {}).get("waiting", {})
        return waiting.get("reason") == "CreateContainerConfigError" and waiting
    pod = await wait_pod(api, ns, "nonroot", config_error)
    waiting = container_status(pod)["state"]["waiting"]
    assert waiting["message"].startswith("container has runAsNonRoot and image will run as root")


async def test_termination_message_is_read_back(cluster, api, ns, tmp_path, namespaces_mode):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: termination-demo
        spec:
          restartPolicy: Never
          containers:
          - name: termination-demo-container
            image: debian
            command: ["/bin/sh"]
            args: ["-c", "sleep 1 && echo Sleep expired > /dev/termination-log; exit 1"]
        """)
    pod = await wait_pod(api, ns, "termination-demo",
                         lambda p: p["status"].get("phase") == "Failed")
    terminated = container_status(pod, "termination-demo-container")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"]) == (1, "Sleep expired\n")


# ---------------------------------------------------------------- nothing escapes

async def test_a_double_forked_setsid_daemon_dies_with_its_pod(cluster, api, ns, tmp_path,
                                                               namespaces_mode):
    token = str(4000 + secrets.randbelow(5000))
    await apply(cluster, tmp_path, ns, f"""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: escaper
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: busybox
            command: ["sh", "-c", "(setsid env -i sleep {token}.5 &) ; exec sleep 3600"]
        """)
    await wait_pod(api, ns, "escaper", running)

    def daemons():
        return [p.pid for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == ["sleep", f"{token}.5"]]
    assert await wait_for(lambda: asyncio.to_thread(daemons), WAIT_S)
    out = await cli(cluster, "delete", "pod", "-n", ns, "escaper")
    assert out.returncode == 0, out.stderr

    async def gone():
        left = await asyncio.to_thread(daemons)
        return not left or Seen(left)
    await wait_for(gone, WAIT_S, interval_s=0.1, message="the daemon is gone")


async def test_a_pod_cannot_read_the_cluster_home_or_etc_shadow(cluster, api, ns, tmp_path,
                                                                namespaces_mode):
    await apply(cluster, tmp_path, ns, """\
        apiVersion: v1
        kind: Pod
        metadata:
          name: nosy
        spec:
          containers:
          - name: main
            image: busybox
            command: ["sh", "-c", "sleep 3600"]
        """)
    await wait_pod(api, ns, "nosy", running)
    out = await kexec(cluster, ns, "nosy", "cat", "/etc/shadow")
    assert out.returncode != 0 and "Permission denied" in out.stderr, (out.stdout, out.stderr)
    home = cluster.home.resolve()
    out = await kexec(cluster, ns, "nosy", "ls", "-A", str(home))
    assert out.stdout.strip() == "", out.stdout  # masked: empty, whatever is in it
    out = await kexec(cluster, ns, "nosy", "cat", str(home / "kubeconfig.json"))
    assert out.returncode != 0
    assert (home / "kubeconfig.json").exists()  # which is there on the host


# ---------------------------------------------------------------- the plain mode

async def test_the_plain_mode_states_its_gaps(tmp_path):
    kinds = comp.node_components(runtime_flags=["--isolation", "plain", "--monitor-period-s",
                                                "0.1"],
                                 kubelet_flags=["--pleg-relist-s", "0.1",
                                                "--node-status-update-s", "1"])
    plain = scheduling_cluster(tmp_path / "plain-home", node_kinds=kinds)
    await plain.astart()
    try:
        async with Client(plain.apiserver, timeout_s=10.0) as api:
            node = await api.get("nodes", NODE)
            assert node.metadata.labels["kubemu.io/isolation"] == "plain"
            assert "asked for" in node.metadata.annotations["kubemu.io/isolation-reason"]
            await apply(plain, tmp_path, "default", SECRET_POD)
            await api.create(obj({"apiVersion": "v1", "kind": "Secret",
                                  "metadata": {"name": "test-secret", "namespace": "default"},
                                  "stringData": {"username": "my-app"}}))
            event = await wait_event(api, "default", "secret-test-pod", "IsolationNotEnforced")
            assert event["type"] == "Warning"
            assert event["message"] == ("volume mount /etc/secret-volume: readOnly is not "
                                        "enforced in the plain isolation mode")
            pod = await pod_json(api, "default", "secret-test-pod")
            assert pod["metadata"]["name"] == "secret-test-pod"
            await delete_pods(api, "default")
    finally:
        left = await plain.astop()
        assert not left, f"processes left after shutdown: {left}"
    assert os.path.isdir(tmp_path / "plain-home")
