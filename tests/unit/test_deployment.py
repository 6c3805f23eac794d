"""The Deployment controller's rollout arithmetic (controller_manager/deployment_util),
table-driven, on a fake clock; cases follow Kubernetes' own
(pkg/controller/deployment/util and sync tests)."""
from __future__ import annotations

import pytest

from kubemu import timefmt
from kubemu.api import codec
from kubemu.api.v1 import apps_pb2

from controller_manager import deployment_util as du
from controller_manager import history

NOW = 1_700_000_000.0


def deployment(replicas: int, surge=None, unavailable=None, strategy: str = "RollingUpdate",
               **spec) -> apps_pb2.Deployment:
    rolling = {}
    if surge is not None:
        rolling["maxSurge"] = surge
    if unavailable is not None:
        rolling["maxUnavailable"] = unavailable
    doc = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default", "generation": 1, "uid": "d-uid"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {"type": strategy,
                                 **({"rollingUpdate": rolling} if rolling else {})},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "kuard:blue"}]}},
                    **spec}}
    return codec.from_dict(apps_pb2.Deployment, doc)


def rs(name: str, replicas: int, available: int | None = None, *, status_replicas: int | None = None,
       created: int = 0, max_replicas: int | None = None, desired: int | None = None,
       revision: int | None = None, image: str = "kuard:blue") -> apps_pb2.ReplicaSet:
    out = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    out.metadata.name = name
    out.metadata.uid = f"{name}-uid"
    out.metadata.creation_timestamp = timefmt.rfc3339(NOW - 1000 + created)
    out.spec.replicas = replicas
    out.spec.template.metadata.labels["app"] = "web"
    out.spec.template.spec.containers.add(name="c", image=image)
    out.status.replicas = replicas if status_replicas is None else status_replicas
    out.status.available_replicas = replicas if available is None else available
    out.status.ready_replicas = out.status.available_replicas
    for key, value in ((du.MAX_REPLICAS, max_replicas), (du.DESIRED_REPLICAS, desired),
                       (du.REVISION, revision)):
        if value is not None:
            out.metadata.annotations[key] = str(value)
    return out


# ---------------------------------------------------------------- fenceposts

@pytest.mark.parametrize("desired, surge, unavailable, want", [
    (10, "25%", "25%", (3, 2)),
    (3, 1, 1, (1, 1)),
    (3, 0, 0, (0, 1)),
    (1, "25%", "25%", (1, 0)),
    (2, "0%", "1%", (0, 1)),
    (2, "1%", "25%", (1, 0)),
    (2, "1%", "0%", (1, 0)),
    (4, "50%", "50%", (2, 2)),
    (5, "10%", "90%", (1, 4)),
    (0, "25%", "25%", (0, 1)),
    (10, None, None, (0, 1)),
], ids=["10-25%-25%", "3-1-1", "3-0-0-unavailable-1", "1-25%-25%", "2-0%-1%-rounds-to-0",
        "2-1%-25%-surge-up", "2-1%-0%", "4-50%-50%", "5-10%-90%", "0-replicas", "unset"])
def test_resolve_fenceposts_rounds_surge_up_and_unavailable_down(desired, surge, unavailable,
                                                                  want):
    assert du.resolve_fenceposts(surge, unavailable, desired) == want


def test_an_int_or_string_that_is_no_percentage_is_an_error():
    with pytest.raises(ValueError, match="not a percentage"):
        du.scaled_value("abc", 10, True)


@pytest.mark.parametrize("d, surge, unavailable, minimum", [
    (deployment(10, "25%", "25%"), 3, 2, 8),
    (deployment(2, 0, 5), 0, 2, 0),
    (deployment(0, "25%", "25%"), 0, 0, 0),
    (deployment(3, strategy="Recreate"), 0, 0, 0),
], ids=["10-25%", "unavailable-capped-at-replicas", "zero-replicas", "recreate"])
def test_max_surge_max_unavailable_min_available(d, surge, unavailable, minimum):
    assert (du.max_surge(d), du.max_unavailable(d), du.min_available(d)) == (
        surge, unavailable, minimum)


# ---------------------------------------------------------------- the new ReplicaSet's size

@pytest.mark.parametrize("d, old, new, want", [
    (deployment(10, "25%", "25%"), [rs("old", 10)], rs("new", 0), 3),
    (deployment(3, 1, 1), [rs("old", 3)], rs("new", 0), 1),
    (deployment(3, 1, 1), [rs("old", 3)], rs("new", 1), 1),
    (deployment(3, 1, 1), [rs("old", 1)], rs("new", 2), 3),
    (deployment(3, 1, 1), [], rs("new", 3), 3),
    (deployment(3, 0, 1), [rs("old", 2)], rs("new", 0), 1),
    (deployment(3, 1, 1), [rs("old", 2, status_replicas=3)], rs("new", 1), 1),
    (deployment(5, strategy="Recreate"), [rs("old", 0)], rs("new", 0), 5),
], ids=["10-25%-first-step", "3-1-1-first-step", "3-1-1-at-max", "3-1-1-fills-up",
        "saturated", "no-surge-after-old-shrank", "old-pods-not-yet-terminating-count",
        "recreate-full-size"])
def test_new_rs_new_replicas(d, old, new, want):
    assert du.new_rs_new_replicas(d, [*old, new], new) == want


# ---------------------------------------------------------------- old ReplicaSets' scale-down

def sizes(steps) -> list[tuple[str, int]]:
    return sorted((rs.metadata.name, size) for rs, size in steps)


@pytest.mark.parametrize("d, old, new, want", [
    (deployment(3, 1, 1), [rs("old", 3)], rs("new", 1, 0), [("old", 2)]),
    (deployment(3, 1, 1), [rs("old", 3)], rs("new", 1, 1), [("old", 1)]),
    (deployment(3, 1, 1), [rs("old", 2)], rs("new", 2, 0), []),
    (deployment(3, 1, 1), [rs("old", 3, 1)], rs("new", 1, 1), [("old", 1)]),
    (deployment(10, "25%", "25%"), [rs("old", 10)], rs("new", 3, 0), [("old", 8)]),
    (deployment(4, 1, 1), [rs("a", 2, created=0), rs("b", 2, created=10)], rs("new", 1, 1),
     [("a", 0)]),
    (deployment(4, 1, 1), [rs("a", 1, created=0), rs("b", 3, created=10)], rs("new", 1, 1),
     [("a", 0), ("b", 2)]),
    (deployment(3, 1, 1), [], rs("new", 3, 3), []),
    # Just scaled down 3 -> 2, its status still says 3 available: Kubernetes'
    # clean-up refuses to "scale down" to 3 and nothing moves until it catches up.
    (deployment(3, 1, 1), [rs("old", 2, 3, status_replicas=3)], rs("new", 2, 1), []),
], ids=["new-unavailable-one-step", "new-available-two-steps", "at-minimum-nothing",
        "unhealthy-old-first", "10-25%", "oldest-first", "spills-to-next-old", "no-old",
        "old-status-lags-its-scale-down"])
def test_old_replica_sets_scale_down(d, old, new, want):
    assert sizes(du.old_rs_scale_downs(d, old, new)) == want


# ---------------------------------------------------------------- proportional scaling

@pytest.mark.parametrize("d, active, want, operation", [
    (deployment(20, 3, 2), [rs("old", 8, max_replicas=13, created=0),
                            rs("new", 5, max_replicas=13, created=10)],
     [("new", 9), ("old", 14)], "up"),
    (deployment(5, 3, 2), [rs("old", 8, max_replicas=13, created=0),
                           rs("new", 5, max_replicas=13, created=10)],
     [("new", 3), ("old", 5)], "down"),
    (deployment(0, 3, 2), [rs("old", 8, max_replicas=13), rs("new", 5, max_replicas=13)],
     [("new", 0), ("old", 0)], "down"),
    (deployment(13, "25%", "25%"), [rs("old", 5, max_replicas=13, created=0),
                                    rs("new", 5, max_replicas=13, created=10)],
     [("new", 10), ("old", 7)], "up"),
    (deployment(10, 3, 2), [rs("old", 8, max_replicas=13), rs("new", 5, max_replicas=13)],
     [("new", 5), ("old", 8)], ""),
    # Equal size and creation time: BySizeNewer puts the later name first.
    (deployment(3, 0, 1), [rs("a", 1, max_replicas=2), rs("b", 1, max_replicas=2)],
     [("a", 1), ("b", 2)], "up"),
], ids=["up-20", "down-5", "to-zero", "tie-newer-gets-leftover", "no-change",
        "tie-in-time-later-name-first"])
def test_proportional_sizes(d, active, want, operation):
    scaling = du.proportional_sizes(d, active)
    assert sorted((r.metadata.name, size) for r, size in scaling.sizes) == want
    assert scaling.operation == operation
    assert sum(size for _, size in scaling.sizes) == (
        du.replicas(d) + du.max_surge(d) if du.replicas(d) else 0)


def test_proportion_without_annotation_uses_the_deployments_status_replicas():
    d = deployment(20, 3, 2)
    d.status.replicas = 13
    scaling = du.proportional_sizes(d, [rs("old", 8, created=0), rs("new", 5, created=10)])
    assert sorted((r.metadata.name, size) for r, size in scaling.sizes) == [("new", 9),
                                                                            ("old", 14)]


@pytest.mark.parametrize("new, old, want", [
    (rs("new", 3), [rs("old", 0)], "new"),
    (rs("new", 0), [rs("old", 3)], "old"),
    (rs("new", 0), [rs("a", 0, created=0), rs("b", 0, created=5)], "new"),
    (None, [rs("a", 0, created=0), rs("b", 0, created=5)], "b"),
    (rs("new", 2), [rs("old", 1)], None),
], ids=["only-new-active", "only-old-active", "none-active-new", "none-active-newest-old",
        "two-active"])
def test_find_active_or_latest(new, old, want):
    found = du.find_active_or_latest(new, old)
    assert (found.metadata.name if found is not None else None) == want


# ---------------------------------------------------------------- the hash and the new RS

def test_fnv32a_and_safe_encoding_are_kubernetes():
    assert history.fnv1a_32(b"") == 0x811C9DC5
    assert history.fnv1a_32(b"a") == 0xE40C292C
    assert history.fnv1a_32(b"foobar") == 0xBF9CF968
    # '0'..'9' are 48..57: 48 % 27 = 21 -> "4", ..., 54 % 27 = 0 -> "b".
    assert history.safe_encode("0123456789") == "456789bcdf"


def test_compute_hash_is_stable_safe_and_moves_with_the_template_and_collisions():
    d = deployment(3)
    h = du.compute_hash(d.spec.template, None)
    assert h == du.compute_hash(deployment(3).spec.template, None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    other = deployment(3)
    other.spec.template.spec.containers[0].image = "kuard:green"
    assert du.compute_hash(other.spec.template, None) != h
    assert len({h, du.compute_hash(d.spec.template, 0), du.compute_hash(d.spec.template, 1)}) == 3


def test_find_new_replica_set_ignores_the_hash_label_and_takes_the_oldest_match():
    d = deployment(3)
    a, b = rs("a", 1, created=10), rs("b", 1, created=0)
    for r in (a, b):
        r.spec.template.metadata.labels[du.UNIQUE_LABEL] = f"hash-{r.metadata.name}"
    green = rs("green", 1, image="kuard:green")
    assert du.find_new_replica_set(d, [green, a, b]).metadata.name == "b"
    required, all_old = du.find_old_replica_sets(d, [green, a, b, rs("zero", 0, image="x")])
    assert [r.metadata.name for r in required] == ["green", "a"]
    assert [r.metadata.name for r in all_old] == ["green", "a", "zero"]


def test_new_rs_annotations_copy_change_cause_skip_revision_and_keep_rollback_history():
    d = deployment(4, 1, 1)
    d.metadata.annotations.update({du.CHANGE_CAUSE: "set image", du.REVISION: "9",
                                   du.LAST_APPLIED: "{}"})
    fresh = rs("new", 0)
    assert du.set_new_rs_annotations(d, fresh, 3, exists=False)
    assert dict(fresh.metadata.annotations) == {
        du.CHANGE_CAUSE: "set image", du.REVISION: "3", du.DESIRED_REPLICAS: "4",
        du.MAX_REPLICAS: "5"}
    # A rollback: revision 1's ReplicaSet becomes new with revision 3.
    back = rs("back", 0, revision=1)
    back.metadata.annotations[du.CHANGE_CAUSE] = "set image"
    assert du.set_new_rs_annotations(d, back, 3, exists=True)
    assert (back.metadata.annotations[du.REVISION],
            back.metadata.annotations[du.REVISION_HISTORY]) == ("3", "1")
    assert du.DESIRED_REPLICAS not in back.metadata.annotations
    assert not du.set_new_rs_annotations(d, back, 3, exists=True)


def test_cleanup_takes_the_lowest_revisions_beyond_the_limit_and_only_scaled_down_ones():
    d = deployment(3, revisionHistoryLimit=1)
    old = [rs("r1", 0, revision=1), rs("r2", 1, revision=2), rs("r3", 0, revision=3),
           rs("r4", 0, revision=4)]
    # Three beyond the limit: the three lowest revisions, of which r2 still has a replica.
    assert [r.metadata.name for r in du.cleanup_candidates(d, old)] == ["r1", "r3"]
    d.spec.revision_history_limit = 0
    assert [r.metadata.name for r in du.cleanup_candidates(d, old)] == ["r1", "r3", "r4"]


# ---------------------------------------------------------------- status and conditions

def test_status_counts_and_available_condition():
    d = deployment(4, 1, 1)
    old, new = rs("old", 2, 2), rs("new", 3, 1, status_replicas=2)
    status = du.calculate_status([old, new], new, d, NOW)
    assert (status.replicas, status.updated_replicas, status.ready_replicas,
            status.available_replicas, status.unavailable_replicas,
            status.observed_generation) == (4, 2, 3, 3, 2, 1)
    cond = du.get_condition(status, du.AVAILABLE)
    assert (cond.status, cond.reason, cond.message) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    status = du.calculate_status([rs("old", 2, 1), rs("new", 2, 1)], None, d, NOW)
    cond = du.get_condition(status, du.AVAILABLE)
    assert (cond.status, cond.reason, cond.message) == (
        "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")


def progressing(d, reason: str, status: str = "True", at: float = NOW) -> None:
    d.status.conditions.append(du.new_condition(du.PROGRESSING, status, reason, "x", at))


def test_a_complete_rollout_says_new_replica_set_available():
    d = deployment(3, 1, 1, progressDeadlineSeconds=600)
    progressing(d, du.REPLICA_SET_UPDATED)
    new = rs("web-abc", 3)
    status = du.rollout_status([rs("old", 0, 0), new], new, d, NOW + 5)
    cond = du.get_condition(status, du.PROGRESSING)
    assert (cond.status, cond.reason, cond.message) == (
        "True", "NewReplicaSetAvailable", 'ReplicaSet "web-abc" has successfully progressed.')


def test_progress_moves_last_update_time_but_not_the_transition():
    d = deployment(3, 1, 1, progressDeadlineSeconds=600)
    progressing(d, du.NEW_REPLICA_SET, at=NOW)
    d.status.replicas, d.status.updated_replicas = 3, 0
    new = rs("web-abc", 1, 0)
    status = du.rollout_status([rs("old", 3), new], new, d, NOW + 30)
    cond = du.get_condition(status, du.PROGRESSING)
    assert (cond.reason, cond.message) == ("ReplicaSetUpdated",
                                           'ReplicaSet "web-abc" is progressing.')
    assert cond.last_update_time == timefmt.rfc3339(NOW + 30)
    assert cond.last_transition_time == timefmt.rfc3339(NOW)


@pytest.mark.parametrize("elapsed_s, timed_out, recheck_s", [
    (5, False, 6.0),
    (9.5, False, 0.0),
    (11, True, None),
], ids=["before-deadline", "about-to-pass", "after-deadline"])
def test_no_progress_past_the_deadline_times_out(elapsed_s, timed_out, recheck_s):
    d = deployment(2, 1, 1, progressDeadlineSeconds=10)
    progressing(d, du.REPLICA_SET_UPDATED, at=NOW)
    d.status.replicas, d.status.updated_replicas = 2, 2
    new = rs("web-abc", 2, 0)
    status = du.rollout_status([new], new, d, NOW + elapsed_s)
    cond = du.get_condition(status, du.PROGRESSING)
    assert (cond.reason == du.TIMED_OUT) == timed_out
    if timed_out:
        assert (cond.status, cond.message) == (
            "False", 'ReplicaSet "web-abc" has timed out progressing.')
        d.status.CopyFrom(status)
    assert du.progress_check_after_s(d, status, NOW + elapsed_s) == recheck_s


def test_without_a_deadline_there_is_no_progressing_condition():
    d = deployment(2, 1, 1)
    d.spec.ClearField("progress_deadline_seconds")
    progressing(d, du.REPLICA_SET_UPDATED)
    status = du.rollout_status([rs("new", 2)], rs("new", 2), d, NOW)
    assert du.get_condition(status, du.PROGRESSING) is None


def test_set_condition_keeps_an_unchanged_reason_and_the_transition_time():
    status = apps_pb2.DeploymentStatus()
    du.set_condition(status, du.new_condition(du.PROGRESSING, "True", "A", "one", NOW))
    du.set_condition(status, du.new_condition(du.PROGRESSING, "True", "A", "two", NOW + 5))
    assert status.conditions[0].message == "one"
    du.set_condition(status, du.new_condition(du.PROGRESSING, "True", "B", "three", NOW + 9))
    cond = status.conditions[0]
    assert (cond.reason, cond.last_transition_time, cond.last_update_time) == (
        "B", timefmt.rfc3339(NOW), timefmt.rfc3339(NOW + 9))


def test_old_pods_running_counts_terminating_but_not_terminal_pods():
    from kubemu.api.v1 import core_pb2
    new, old = rs("new", 0, status_replicas=0), rs("old", 0, status_replicas=0)
    done = core_pb2.Pod()
    done.status.phase = "Succeeded"
    going = core_pb2.Pod()
    going.status.phase = "Running"
    going.metadata.deletion_timestamp = timefmt.rfc3339(NOW)
    assert not du.old_pods_running(new, [old], {"old-uid": [done], "new-uid": [going]})
    assert du.old_pods_running(new, [old], {"old-uid": [done, going]})
    assert du.old_pods_running(new, [rs("old", 0, status_replicas=1)], {})
