"""The pure parts of container isolation: what the kubelet asks of the runtime
(securityContext, DNS, termination messages) and the runtime's small helpers
(hosts file, resolv.conf, cgroup hook, the low-ports filter)."""
from __future__ import annotations

import os
import struct

import pytest

from kubelet import envvars
from kubelet import dns as kdns
from kubelet import pod_runtime as pr
from kubelet.runtime import isolation as iso
from kubelet.runtime import lowports, nsinit
from kubemu.runtime.v1 import runtime_pb2 as rpb
from tests.builders import obj


def pod(spec_extra=None, ctr_extra=None):
    return obj({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
                "spec": {"containers": [{"name": "c", "image": "busybox", **(ctr_extra or {})}],
                         **(spec_extra or {})}})


@pytest.mark.parametrize("pod_sc, ctr_sc, want", [
    ({}, {}, dict(uid=None, gid=None, groups=[], ro=False, nnp=False)),
    ({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000}, {"allowPrivilegeEscalation": False},
     dict(uid=1000, gid=3000, groups=[2000], ro=False, nnp=True)),
    ({"runAsUser": 1000, "supplementalGroups": [5, 4]}, {"runAsUser": 7,
                                                          "readOnlyRootFilesystem": True},
     dict(uid=7, gid=None, groups=[4, 5], ro=True, nnp=False)),
    ({"runAsNonRoot": True, "runAsUser": 10}, {}, dict(uid=10, gid=None, groups=[], ro=False,
                                                       nnp=False)),
], ids=["nothing", "pod-level-with-fsgroup", "container-wins", "non-root-with-a-user"])
def test_security_context_merges_pod_and_container(pod_sc, ctr_sc, want):
    p = pod({"securityContext": pod_sc}, {"securityContext": ctr_sc})
    sc = pr.security_context(p, p.spec.containers[0])
    assert (sc.run_as_user if sc.HasField("run_as_user") else None) == want["uid"]
    assert (sc.run_as_group if sc.HasField("run_as_group") else None) == want["gid"]
    assert list(sc.supplemental_groups) == want["groups"]
    assert (sc.readonly_rootfs, sc.no_new_privs) == (want["ro"], want["nnp"])


@pytest.mark.parametrize("pod_sc, ctr_sc, message", [
    ({"runAsNonRoot": True}, {},
     'container has runAsNonRoot and image will run as root (pod: "p_ns(u1)", container: c)'),
    ({}, {"runAsNonRoot": True, "runAsUser": 0},
     'container\'s runAsUser breaks non-root policy (pod: "p_ns(u1)", container: c)'),
], ids=["root-image", "explicit-root"])
def test_run_as_non_root_is_refused_for_root(pod_sc, ctr_sc, message):
    p = pod({"securityContext": pod_sc}, {"securityContext": ctr_sc})
    with pytest.raises(envvars.ConfigError) as err:
        pr.security_context(p, p.spec.containers[0])
    assert str(err.value) == message


def test_dns_config_options_are_name_or_name_colon_value():
    p = pod({"dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["a.b"],
                           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})
    dns, _ = kdns.Configurer().pod_dns(p)
    assert (list(dns.servers), list(dns.searches), list(dns.options)) == \
        (["1.2.3.4"], ["a.b"], ["ndots:2", "edns0"])
    assert iso.resolv_conf(dns.servers, dns.searches, dns.options) == \
        "nameserver 1.2.3.4\nsearch a.b\noptions ndots:2 edns0\n"


def _exited(tmp_path, file_text: bytes, log_text: bytes, code: int, policy: str):
    message_file = tmp_path / "termination-log"
    message_file.write_bytes(file_text)
    log = tmp_path / "0.log"
    log.write_bytes(log_text)
    return rpb.ContainerStatus(
        state=rpb.CONTAINER_EXITED, exit_code=code, log_path=str(log),
        mounts=[rpb.Mount(container_path="/dev/termination-log", host_path=str(message_file))],
        annotations={pr.TERMINATION_PATH_ANNOTATION: "/dev/termination-log",
                     pr.TERMINATION_POLICY_ANNOTATION: policy})


@pytest.mark.parametrize("file_text, log_text, code, policy, want", [
    (b"Sleep expired\n", b"x\n", 1, "File", "Sleep expired\n"),
    (b"", b"out\n", 1, "File", ""),
    (b"", b"".join(b"line %d\n" % i for i in range(100)), 2, "FallbackToLogsOnError",
     "".join(f"line {i}\n" for i in range(20, 100))),
    (b"", b"out\n", 0, "FallbackToLogsOnError", ""),
    (b"said", b"out\n", 1, "FallbackToLogsOnError", "said"),
    (b"x" * 5000, b"", 1, "File", "x" * 4096),
], ids=["file", "empty-file", "fallback-last-80-lines", "no-fallback-on-success",
        "file-wins", "at-most-4096-bytes"])
def test_termination_message(tmp_path, file_text, log_text, code, policy, want):
    assert pr.termination_message(_exited(tmp_path, file_text, log_text, code, policy)) == want


def test_hosts_file_as_the_kubelet_writes_it():
    text = nsinit.hosts_file("web", "127.1.0.5", "sub.ns.svc.cluster.local",
                             [("10.1.2.3", ["foo.remote", "bar.remote"])])
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in lines
    assert "127.1.0.5\tweb.sub.ns.svc.cluster.local\tweb" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "10.1.2.3\tfoo.remote\tbar.remote"]


def test_enter_cgroup_writes_the_pid_to_each_procs_file(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.procs").write_text("")
    v1 = tmp_path / "cpu" / "cgroup.procs"
    v1.parent.mkdir()
    v1.write_text("")
    nsinit.enter_cgroup({"cgroup": str(v2), "cgroup_procs": [str(v1)]})
    assert (v2 / "cgroup.procs").read_text() == str(os.getpid())
    assert v1.read_text() == str(os.getpid())
    nsinit.enter_cgroup({})  # nothing asked: nothing done
    with pytest.raises(nsinit.InitError, match="joining cgroup .*missing/cgroup.procs"):
        nsinit.enter_cgroup({"cgroup": [str(tmp_path / "missing")]})


def test_the_low_ports_filter_sends_only_bind_to_the_supervisor():
    program = nsinit.bind_filter_program("x86_64")
    rules = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    assert rules[1][3] == nsinit.AUDIT_ARCH["x86_64"] and rules[3][3] == 49
    assert (rules[4][3], rules[5][3]) == (nsinit.RET_USER_NOTIF, nsinit.RET_ALLOW)
    assert lowports.supported("x86_64") and not lowports.supported("riscv64")


@pytest.mark.parametrize("raw, want", [
    (struct.pack("=H", 2) + struct.pack("!H", 80) + bytes([127, 1, 0, 5]) + bytes(8),
     ("127.1.0.5", 80)),
    (struct.pack("=H", 10) + bytes(26), None),
    (b"\x02", None),
], ids=["inet", "inet6", "short"])
def test_parse_inet(raw, want):
    assert lowports.parse_inet(raw) == want


@pytest.mark.parametrize("path, masks, want", [
    ("/usr", [], False),                              # a system interpreter: seen through /usr's overlay
    ("/work/src/.venv", [], False),
    ("/root/.pyenv/versions/3.11.7", [], True),       # the container has its own /root
    ("/tmp/venv", [], True),                          # and its own /tmp
    ("/home/u/src", ["/home/u"], True),               # a rootless runtime's home is masked
    ("/home/uu/src", ["/home/u"], False),
], ids=["system-prefix", "venv-in-a-checkout", "under-root", "under-tmp", "under-a-mask",
        "beside-a-mask"])
def test_only_paths_the_view_would_hide_are_bound_again(path, masks, want):
    assert nsinit.hidden(path, masks) is want


@pytest.mark.parametrize("rootless, uid, gid, uid_map, gid_map, host_1000", [
    (False, 1000, 3000, [[0, 0x1000_0000, 65536]], [[0, 0x1000_0000, 65536]], 0x1000_0000 + 1000),
    (True, 0, 0, [[0, 65534, 1]], [[0, 65534, 1]], 65534),
    (True, 1000, 3000, [[1000, 65534, 1]], [[3000, 65534, 1]], 65534),
], ids=["root-maps-a-range", "rootless-root", "rootless-run-as-user"])
def test_the_user_namespace_maps(rootless, uid, gid, uid_map, gid_map, host_1000):
    i = iso.Isolation(mode=iso.NAMESPACES, rootless=rootless,
                      uid_base=65534 if rootless else 0x1000_0000,
                      gid_base=65534 if rootless else 0x1000_0000,
                      id_count=1 if rootless else iso.UID_COUNT)
    spec = i.identity_spec(uid, gid)
    assert (spec["uid_map"], spec["gid_map"]) == (uid_map, gid_map)
    assert spec["setgroups"] == ("deny" if rootless else "allow")
    assert i.host_uid(1000) == host_1000
    assert i.host_uid(-1) is None
