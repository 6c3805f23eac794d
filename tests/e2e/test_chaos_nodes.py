"""Node faults through `kubemu chaos run` (see test_chaos.py): a kubelet kept
down (stop) and then started, and a node's kubelet cut off from the
apiserver both ways (partition) and then healed; each time the workloads
converge and every invariant holds."""
from __future__ import annotations

import pytest

from tests.e2e.test_chaos import RUN_TIMEOUT_S, SCENARIOS, fired, run_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

KUBELET_DOWN = """
name: kubelet-kept-down
duration: 30s
settle: 120s
cluster: {nodes: 2, profile: fast}
workloads:
  - {kind: deployment-churner, name: web, replicas: [2, 3], rollouts: 1, every: 8s}
  - {kind: configmap-writer, name: writer, rate: 5, keys: 5}
timeline:
  - {at: 4s, action: stop, target: node-1/kubelet, for: 20s}
"""


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_a_kubelet_kept_down_then_started_converges(tmp_path):
    report = run_scenario(tmp_path, KUBELET_DOWN, seed=11)
    assert [(e["action"], e["target"]) for e in fired(report)] == [
        ("stop", "node-1/kubelet")], report["timeline"]


@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_a_partitioned_node_healed_converges(tmp_path):
    text = (SCENARIOS / "partitioned-node.yaml").read_text()
    report = run_scenario(tmp_path, text, seed=2)
    assert [(e["action"], e["target"]) for e in fired(report)] == [
        ("partition", "node-1/kubelet")], report["timeline"]
