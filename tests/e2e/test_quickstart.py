"""The README's path, end to end through the real `kubemu` command:
up --detach -> apply a namespace, configmap and pod -> get -o json -> down."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import psutil

from kubemu.client.wait import wait_for_sync

REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO = REPO / "deploy" / "manifests" / "demo.yaml"


def kubemu(home: pathlib.Path, *args: str, stdin: str | None = None,
           timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBEMU_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "kubemu.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=timeout_s,
                          cwd=REPO)


def home_processes(home: pathlib.Path) -> list[int]:
    """Every live process whose command line or environment mentions the home."""
    marker = str(home)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(proc.info["cmdline"] or [])
            if marker in text or proc.environ().get("KUBEMU_HOME") == marker:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return [pid for pid in found if pid != os.getpid()]


def test_up_apply_get_down(tmp_path):
    home = tmp_path / "home"
    try:
        up = kubemu(home, "up", "--detach", "--nodes", "0")
        assert up.returncode == 0, up.stdout + up.stderr
        assert home_processes(home), "the cluster should be running"

        applied = kubemu(home, "apply", "-f", str(DEMO))
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.splitlines() == [
            "namespace/demo created", "configmap/kuard-config created", "pod/kuard created"]
        again = kubemu(home, "apply", "-f", str(DEMO))
        assert again.stdout.splitlines() == [
            "namespace/demo unchanged", "configmap/kuard-config unchanged", "pod/kuard unchanged"]

        got = kubemu(home, "get", "pod", "kuard", "-n", "demo", "-o", "json")
        assert got.returncode == 0, got.stderr
        pod = json.loads(got.stdout)
        assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
        meta = pod["metadata"]
        assert meta["name"] == "kuard" and meta["namespace"] == "demo"
        assert meta["uid"] and int(meta["resourceVersion"]) > 0
        assert meta["creationTimestamp"].endswith("Z")
        assert "kubectl.kubernetes.io/last-applied-configuration" in meta["annotations"]
        container = pod["spec"]["containers"][0]
        assert container["ports"][0] == {"containerPort": 8080, "name": "http", "protocol": "TCP"}
        assert container["readinessProbe"]["httpGet"]["port"] == "http"  # int-or-string kept
        assert container["livenessProbe"]["httpGet"]["port"] == 8080
        assert container["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"},
                                          "limits": {"memory": "256Mi"}}
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert pod["spec"]["restartPolicy"] == "Always"
        assert pod["spec"]["terminationGracePeriodSeconds"] == 30
        assert pod["status"]["phase"] == "Pending"
        assert pod["status"]["qosClass"] == "Burstable"

        unknown = kubemu(home, "get", "widgets")
        assert unknown.returncode == 1
        assert unknown.stderr.strip() == (
            'error: the server doesn\'t have a resource type "widgets"'), unknown.stderr
        listed = json.loads(kubemu(home, "get", "cm,ns", "-A", "-o", "json").stdout)
        assert listed["kind"] == "List" and listed["apiVersion"] == "v1"
        kinds = {(i["kind"], i["metadata"]["name"]) for i in listed["items"]}
        assert {("ConfigMap", "kuard-config"), ("Namespace", "demo"),
                ("Namespace", "default"), ("Namespace", "kube-system")} <= kinds
        cm = next(i for i in listed["items"] if i["kind"] == "ConfigMap")
        assert cm["data"] == {"greeting": "hello from kubemu", "mode": "demo"}

        bad = kubemu(home, "apply", "-f", "-", stdin=(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo, namespace: demo}\n"
            "datta: {a: b}\n"))
        assert bad.returncode != 0 and "datta: unknown field" in bad.stderr
        assert kubemu(home, "get", "cm", "typo", "-n", "demo").returncode != 0

        down = kubemu(home, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert home_processes(home) == []
    finally:
        kubemu(home, "down")
        wait_for_sync(lambda: home_processes(home) == [], 20, message="no process of the home left")
