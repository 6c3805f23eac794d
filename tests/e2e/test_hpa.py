"""The HorizontalPodAutoscaler walkthrough end to end (issue 11's "Done means"):
php-apache (registry.k8s.io/hpa-example: every request burns CPU) behind a
Service, `kubemu autoscale deployment php-apache --cpu-percent=50 --min=1
--max=4`, a busybox load generator running the walkthrough's wget loop
against the Service; the HPA scales the Deployment up on the kubelets' real
CPU usage (the metrics API), and down again once the load generator is gone.

The cluster is this module's own: one node, the whole control plane with the
fast profile (the metrics API samples a node every 2 s; the HPA syncs every
2 s with a 10 s downscale stabilization window), the commands run through
`kubemu` as a reader types them.

`kubemu top pods` agrees with the usage the HPA acted on: the HPA's
status.currentMetrics averageValue is the mean CPU of the pods it counted,
from the same metrics API `top` reads. Both read the same per-node sample
while it is fresh (2 s), so they agree exactly then; read across two samples,
they differ by how much the load moved in between. The check allows
max(50m, 25%) of the HPA's value and retries until a read pair agrees: a
metrics API or a calculator that were off (a rate over the wrong window,
usage summed instead of averaged, requests instead of usage) would be off by
a factor, never within it.
"""
from __future__ import annotations

import json

import pytest

from kubemu.client.wait import wait_for_sync
from tests.e2e.test_kubelet import (ClusterThread, Seen, kubemu, ok,
                                    serving, workload_control_plane)

pytestmark = pytest.mark.e2e

WAIT_S = 150.0
INTERVAL_S = 1.0
MAX_REPLICAS = 4
BUSY_MILLIS = 25.0

PHP_APACHE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: php-apache
spec:
  selector:
    matchLabels:
      run: php-apache
  template:
    metadata:
      labels:
        run: php-apache
    spec:
      containers:
      - name: php-apache
        image: registry.k8s.io/hpa-example
        ports:
        - containerPort: 80
        resources:
          limits:
            cpu: 500m
          requests:
            cpu: 200m
---
apiVersion: v1
kind: Service
metadata:
  name: php-apache
  labels:
    run: php-apache
spec:
  ports:
  - port: 80
  selector:
    run: php-apache
"""

LOAD_GENERATOR = """\
apiVersion: v1
kind: Pod
metadata:
  name: load-generator
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: load-generator
    image: busybox:1.28
    command: ["/bin/sh", "-c", "while sleep 0.01; do wget -q -O- http://$PHP_APACHE_SERVICE_HOST; done"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from serving(ClusterThread(tmp_path_factory.mktemp("hpa-home"), nodes=1,
                                     kinds=workload_control_plane()))


def hpa(cluster) -> dict:
    return json.loads(ok(cluster, "get", "hpa", "php-apache", "-o", "json"))


def replicas(cluster) -> int:
    return int(ok(cluster, "get", "deployment", "php-apache", "-o",
                  "jsonpath={.spec.replicas}") or 0)


def millis(text: str) -> float:
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def top_pods_mean_millis(cluster) -> float | None:
    got = kubemu(cluster, "top", "pods", "-l", "run=php-apache", "--no-headers")
    rows = [line.split() for line in got.stdout.splitlines() if line.strip()]
    if got.returncode != 0 or not rows:
        return None
    return sum(millis(row[1]) for row in rows) / len(rows)


def test_hpa_scales_a_busy_deployment_up_and_down(cluster):
    ok(cluster, "apply", "-f", "-", stdin=PHP_APACHE)
    ok(cluster, "rollout", "status", "deployment/php-apache", "--timeout=90s")
    out = ok(cluster, "autoscale", "deployment", "php-apache", "--cpu-percent=50", "--min=1",
             f"--max={MAX_REPLICAS}")
    assert out == "horizontalpodautoscaler.autoscaling/php-apache autoscaled\n"

    def idle_metrics_seen():
        status = hpa(cluster).get("status", {})
        current = status.get("currentMetrics") or [{}]
        got = current[0].get("resource", {}).get("current", {})
        return got if "averageUtilization" in got else Seen(status)
    wait_for_sync(idle_metrics_seen, WAIT_S, interval_s=INTERVAL_S,
                  message="the HPA reads the idle pod's CPU")
    header, row = ok(cluster, "get", "hpa").splitlines()
    assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS",
                              "AGE"]
    assert row.split()[:3] == ["php-apache", "Deployment/php-apache", "cpu:"]

    ok(cluster, "apply", "-f", "-", stdin=LOAD_GENERATOR)

    def scaled_up():
        n = replicas(cluster)
        return n if n > 1 else Seen(hpa(cluster).get("status", {}))
    wait_for_sync(scaled_up, WAIT_S, interval_s=INTERVAL_S, message="the HPA scales up")

    def top_agrees_with_the_hpa():
        status = hpa(cluster).get("status", {})
        current = (status.get("currentMetrics") or [{}])[0].get("resource", {}).get("current")
        if not current or "averageValue" not in current:
            return Seen(status)
        acted_on = millis(current["averageValue"])
        shown = top_pods_mean_millis(cluster)
        if shown is None or abs(shown - acted_on) > max(50.0, 0.25 * acted_on):
            return Seen({"hpa": acted_on, "top": shown})
        return acted_on, shown
    acted_on, shown = wait_for_sync(top_agrees_with_the_hpa, WAIT_S, interval_s=INTERVAL_S,
                                    message="top pods agrees with the HPA's currentMetrics")
    # Busy, not idle (an idle php-apache uses a millicore or two): the load is
    # split over the pods the HPA added, on a machine other tests share.
    assert acted_on >= BUSY_MILLIS, f"the HPA acted on {acted_on}m under load (top: {shown}m)"

    ok(cluster, "delete", "pod", "load-generator", "--grace-period=1")

    def scaled_down():
        n = replicas(cluster)
        return n if n == 1 else Seen([n, hpa(cluster).get("status", {})])
    wait_for_sync(scaled_down, WAIT_S, interval_s=INTERVAL_S, message="the HPA scales down")

    events = json.loads(ok(cluster, "get", "events", "--field-selector",
                           "involvedObject.kind=HorizontalPodAutoscaler", "-o", "json"))
    messages = [e["message"] for e in events["items"] if e["reason"] == "SuccessfulRescale"]
    assert any(m.endswith("reason: cpu resource utilization (percentage of request) above "
                          "target") for m in messages), messages
    assert "New size: 1; reason: All metrics below target" in messages, messages
    described = ok(cluster, "describe", "hpa", "php-apache")
    assert "resource cpu on pods  (as a percentage of request):" in described
    assert "ScalingActive" in described and "ValidMetricFound" in described
    ok(cluster, "delete", "hpa", "php-apache")
    ok(cluster, "delete", "-f", "-", stdin=PHP_APACHE)
