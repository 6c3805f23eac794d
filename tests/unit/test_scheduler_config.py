"""--config for the scheduler: which profile is used and how it merges with the default."""
from __future__ import annotations

import pytest

from scheduler.config import load_framework, merge_with_default, select_profile
from scheduler.default_config import default_config
from scheduler.framework import ConfigError


def names(framework):
    return ([p.NAME for p in framework.filter_plugins],
            [(p.NAME, w) for p, w in framework.score_plugins])


def test_no_file_is_the_default_profile():
    framework = load_framework(None, "default-scheduler")
    filters, scores = names(framework)
    assert filters[:3] == ["NodeUnschedulable", "NodeName", "TaintToleration"]
    assert ("TaintToleration", 3) in scores
    assert framework.scheduler_name == "default-scheduler"


def test_a_kube_scheduler_configuration_picks_our_profile(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("""\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 50
profiles:
- schedulerName: other
- schedulerName: bin-packer
  plugins:
    score:
      enabled:
      - {name: NodeResourcesFit, weight: 5}
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
""")
    framework = load_framework(str(path), "bin-packer")
    filters, scores = names(framework)
    assert scores == [("NodeResourcesFit", 5)]
    assert filters == [e["name"] for e in default_config()["plugins"]["filter"]["enabled"]]
    assert framework.percentage_of_nodes_to_score == 50
    assert framework.scheduler_name == "bin-packer"


@pytest.mark.parametrize(("doc", "message"), [
    ({"profiles": [{"schedulerName": "x"}]},
     "want exactly one profile with schedulerName 'default-scheduler'"),
    ({"kind": "KubeSchedulerConfiguration", "leaderElection": {}}, "unknown field 'leaderElection'"),
    ({"plugins": {"filter": {"enabled": [{"name": "NoSuchPlugin"}]}}},
     'plugin "NoSuchPlugin" does not exist'),
    ({"schedulerName": "x"}, "this scheduler runs as 'default-scheduler'"),
    ([1, 2], "expected a mapping"),
], ids=["no-matching-profile", "unknown-field", "unknown-plugin", "other-name", "not-a-mapping"])
def test_bad_configs_say_why(tmp_path, doc, message):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=message):
        load_framework(str(path), "default-scheduler")


def test_plugin_config_replaces_only_the_plugins_it_names():
    merged = merge_with_default(select_profile(
        {"pluginConfig": [{"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 5}}]},
        "default-scheduler"))
    by_name = {e["name"]: e["args"] for e in merged["pluginConfig"]}
    assert by_name["InterPodAffinity"] == {"hardPodAffinityWeight": 5}
    assert by_name["NodeResourcesFit"]["scoringStrategy"]["type"] == "LeastAllocated"
