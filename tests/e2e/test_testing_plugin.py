"""kubemu.testing's pytest plugin, run by pytest's own pytester in a subprocess, as a
user's test suite would run it: real clusters, real reports."""
from __future__ import annotations

import json
import pathlib

import psutil
import pytest

from kubemu import cluster_home

pytestmark = pytest.mark.e2e

# Each test writes what it saw (its worker, cluster address, home) for the outer test.
RECORD = """
import json, os, pathlib

def record(name, cluster, **extra):
    out = pathlib.Path(os.environ["KUBEMU_PLUGIN_RECORD"])
    with out.open("a") as f:
        f.write(json.dumps({"test": name, "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
                            "address": cluster.address, "home": str(cluster.home),
                            **extra}) + "\\n")
"""

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nowhere"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def run(pytester: pytest.Pytester, record: pathlib.Path, *args: str):
    pytester.makeconftest(RECORD)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n"
                     "asyncio_default_fixture_loop_scope = function\n")
    # The inner run is a user's: only what it asks for (not this suite's PYTEST_ADDOPTS).
    pytester._monkeypatch.setenv("KUBEMU_PLUGIN_RECORD", str(record))
    pytester._monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=240)


def records(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_nothing_left(homes: set[str]) -> None:
    for home in homes:
        left = cluster_home.find_home_processes(pathlib.Path(home))
        assert not left, f"left behind by the run: {cluster_home.describe(left)}"


def test_a_failing_tests_report_has_status_logs_and_the_namespaces_events(pytester, tmp_path):
    record = tmp_path / "record.jsonl"
    pytester.makepyfile(test_user=f"""
        import pytest
        from conftest import record

        async def test_waits_for_a_pod_that_cannot_run(kubemu_cluster, kubemu_client,
                                                      kubemu_namespace):
            record("fails", kubemu_cluster, namespace=kubemu_namespace)
            await kubemu_cluster.apply({POD!r}, namespace=kubemu_namespace)

            async def unschedulable():
                events = (await kubemu_client.list("events", kubemu_namespace)).items
                return [e.reason for e in events if e.reason == "FailedScheduling"]
            await kubemu_cluster.wait_for(unschedulable, 30)
            assert False, "the pod never runs: there is no node"

        def test_without_kubemu_fails_plainly():
            assert False, "nothing of kubemu here"
    """)
    result = run(pytester, record, "-p", "kubemu.testing")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    (seen,) = records(record)
    namespace = seen["namespace"]
    assert namespace.startswith("waits-for-a-pod-that-cannot-run-"), namespace
    for needle in ("kubemu status", "NAME", "apiserver-0", "running", "scheduler-0",
                   "kubemu log apiserver-0 (last 20 lines)", "apiserver listening",
                   "kubemu log scheduler-0", f"kubemu events in namespace {namespace}",
                   "FailedScheduling", "pod/nowhere"):
        assert needle in out, f"{needle!r} not in the report:\n{out[-6000:]}"
    # The plain test's report has none of it.
    plain = out[out.index("test_without_kubemu_fails_plainly"):]
    plain = plain[:plain.index("short test summary")]
    assert "kubemu status" not in plain, plain
    assert_nothing_left({seen["home"]})
    assert (pathlib.Path(seen["home"]) / "logs" / "apiserver-0.log").is_file(), \
        "the home of a cluster a failing test used is kept"


def test_tests_share_a_cluster_and_each_sees_only_its_namespace(pytester, tmp_path):
    record = tmp_path / "record.jsonl"
    pytester.makepyfile(test_user="""
        import pytest
        from conftest import record

        CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}}

        async def test_one(kubemu_cluster, kubemu_client, kubemu_namespace):
            await kubemu_cluster.apply(CM, namespace=kubemu_namespace)
            record("one", kubemu_cluster, namespace=kubemu_namespace)

        async def test_two(kubemu_cluster, kubemu_client, kubemu_namespace):
            seen = (await kubemu_client.list("configmaps", kubemu_namespace)).items
            names = [c.metadata.name for c in seen if c.metadata.name != "kube-root-ca.crt"]
            assert names == []
            record("two", kubemu_cluster, namespace=kubemu_namespace)

        @pytest.mark.kubemu(components=["etcd", "apiserver"])
        def test_own_shape(kubemu_cluster):
            assert [p.name for p in kubemu_cluster.status()] == ["etcd-0", "apiserver-0"]
            record("own", kubemu_cluster)
    """)
    result = run(pytester, record, "-p", "kubemu.testing")
    result.assert_outcomes(passed=3)
    seen = {r["test"]: r for r in records(record)}
    assert seen["one"]["address"] == seen["two"]["address"], "one shared cluster"
    assert seen["one"]["namespace"] != seen["two"]["namespace"]
    assert seen["own"]["address"] != seen["one"]["address"], "a marked test gets its own"
    assert_nothing_left({r["home"] for r in seen.values()})
    kept = [r["home"] for r in seen.values() if pathlib.Path(r["home"]).exists()]
    assert kept == [], "the homes of clusters whose tests passed are removed"


def test_xdist_gives_each_worker_a_cluster_and_scope_function_one_per_test(pytester, tmp_path):
    record = tmp_path / "record.jsonl"
    pytester.makepyfile(**{f"test_w{i}": f"""
        from conftest import record

        def test_{i}a(kubemu_cluster):
            record("{i}a", kubemu_cluster)

        def test_{i}b(kubemu_cluster):
            record("{i}b", kubemu_cluster)
    """ for i in range(2)})
    result = run(pytester, record, "-p", "kubemu.testing", "-n", "2", "--dist", "loadfile",
                 "--kubemu-components", "etcd,apiserver")
    result.assert_outcomes(passed=4)
    seen = records(record)
    by_worker: dict[str, set[str]] = {}
    for r in seen:
        by_worker.setdefault(r["worker"], set()).add(r["address"])
    assert sorted(by_worker) == ["gw0", "gw1"], by_worker
    assert all(len(addresses) == 1 for addresses in by_worker.values()), by_worker
    assert by_worker["gw0"] != by_worker["gw1"], "one cluster per worker"
    assert_nothing_left({r["home"] for r in seen})

    record.unlink()
    result = run(pytester, record, "-p", "kubemu.testing", "-p", "no:xdist",
                 "--kubemu-scope", "function", "--kubemu-components", "etcd,apiserver",
                 "test_w0.py")
    result.assert_outcomes(passed=2)
    seen = records(record)
    assert len({r["address"] for r in seen}) == 2, "--kubemu-scope function: one per test"


def test_the_plugin_is_opt_in(pytester, tmp_path):
    record = tmp_path / "record.jsonl"
    pytester.makepyfile(test_user="""
        def test_needs_a_cluster(kubemu_cluster):
            assert kubemu_cluster.running
    """)
    result = run(pytester, record)
    result.assert_outcomes(errors=1)
    assert "fixture 'kubemu_cluster' not found" in result.stdout.str()
    result = run(pytester, record, "--kubemu", "--kubemu-components", "etcd,apiserver")
    result.assert_outcomes(passed=1)


def test_a_bad_shape_is_a_usage_error_naming_the_reason(pytester, tmp_path):
    record = tmp_path / "record.jsonl"
    pytester.makepyfile(test_user="""
        def test_needs_a_cluster(kubemu_cluster):
            pass
    """)
    result = run(pytester, record, "-p", "kubemu.testing", "--kubemu-components", "etcd,kubelet")
    assert result.ret != 0
    assert "'apiserver' is required" in result.stdout.str() + result.stderr.str()
    assert not any(p.info["cmdline"] and "deploy" in p.info["cmdline"]
                   and str(pytester.path) in " ".join(p.info["cmdline"])
                   for p in psutil.process_iter(["cmdline"]))
