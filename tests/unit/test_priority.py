"""PriorityClasses: validation, defaults, the Priority admission plug-in for
pods and classes, the built-in classes (registry on the in-memory store)."""
from __future__ import annotations

import pathlib
import random

import pytest

from apiserver.memstore import MemoryStore
from apiserver.registry import ObjectRegistry
from apiserver.strategy.priority import system_priority_classes
from kubemu.api import errors
from kubemu.api.kinds import REGISTRY
from kubemu.api.v1 import core_pb2
from tests.builders import make_pod, obj

PODS = REGISTRY.by_resource("pods")
CLASSES = REGISTRY.by_resource("priorityclasses")
NAMESPACES = REGISTRY.by_resource("namespaces")


def priority_class(name: str, value: int = 1000, *, default: bool = False,
                   policy: str | None = None):
    doc = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
           "metadata": {"name": name}, "value": value}
    if default:
        doc["globalDefault"] = True
    if policy is not None:
        doc["preemptionPolicy"] = policy
    return obj(doc)


def pod(name: str = "x", class_name: str = "", **spec):
    builder = make_pod(name)
    if class_name:
        builder.doc["spec"]["priorityClassName"] = class_name
    builder.doc["spec"].update(spec)
    return builder.build()


@pytest.fixture
async def reg():
    registry = ObjectRegistry(MemoryStore(), {}, rng=random.Random(7), clock=lambda: 1.8e9)
    await registry.create(NAMESPACES, "", core_pb2.Namespace(metadata={"name": "default"}))
    return registry


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("made, message", [
    (priority_class("too-high", 1_000_000_001),
     'PriorityClass "too-high" is invalid: value: Forbidden: maximum allowed value of a user '
     'defined priority is 1000000000'),
    (priority_class("system-mine", 5),
     'PriorityClass "system-mine" is invalid: metadata.name: Forbidden: priority class names '
     "with 'system-' prefix are reserved for system use only. error: system-mine is not a "
     'known system priority class'),
    (priority_class("system-node-critical", 5),
     'PriorityClass "system-node-critical" is invalid: metadata.name: Forbidden: priority '
     "class names with 'system-' prefix are reserved for system use only. error: value of "
     'system-node-critical PriorityClass must be 2000001000'),
    (priority_class("bad", policy="Sometimes"),
     'PriorityClass "bad" is invalid: preemptionPolicy: Unsupported value: "Sometimes": '
     'supported values: "Never", "PreemptLowerPriority"'),
    (priority_class("Bad_Name"),
     'PriorityClass "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a '
     "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
     "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
     "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
], ids=["value-over-user-max", "system-prefix", "system-wrong-value", "bad-policy", "bad-name"])
async def test_invalid_classes_are_refused(reg, made, message):
    with pytest.raises(errors.Invalid) as err:
        await reg.create(CLASSES, "", made)
    assert err.value.message == message
    with pytest.raises(errors.NotFound):
        await reg.get(CLASSES, "", made.metadata.name)


async def test_a_class_defaults_to_preempt_lower_priority_and_value_is_immutable(reg):
    made = await reg.create(CLASSES, "", priority_class("high", 0))
    assert made.preemption_policy == "PreemptLowerPriority"
    assert made.HasField("value") and made.value == 0
    changed = priority_class("high", 7)
    changed.metadata.resource_version = made.metadata.resource_version
    with pytest.raises(errors.Invalid) as err:
        await reg.update(CLASSES, changed)
    assert err.value.message == ('PriorityClass "high" is invalid: value: Forbidden: may not '
                                 'be changed in an update.')
    described = priority_class("high", 0)
    described.description = "still high"
    assert (await reg.update(CLASSES, described)).description == "still high"


async def test_only_one_global_default(reg):
    await reg.create(CLASSES, "", priority_class("first", 10, default=True))
    with pytest.raises(errors.Forbidden) as err:
        await reg.create(CLASSES, "", priority_class("second", 20, default=True))
    assert err.value.message == (
        'priorityclasses.scheduling.k8s.io "second" is forbidden: PriorityClass first is '
        'already marked as default. Only one default can exist')
    # Nor may an existing class become a second default; the default itself may change.
    await reg.create(CLASSES, "", priority_class("third", 30))
    with pytest.raises(errors.Forbidden) as err:
        await reg.update(CLASSES, priority_class("third", 30, default=True))
    assert err.value.message.startswith('priorityclasses.scheduling.k8s.io "third" is '
                                        'forbidden: PriorityClass first is already marked')
    first = priority_class("first", 10, default=True)
    first.description = "the default"
    assert (await reg.update(CLASSES, first)).description == "the default"


async def test_the_built_in_classes_are_valid_and_cannot_be_deleted(reg):
    for pc in system_priority_classes():
        await reg.create(CLASSES, "", pc)
    made = await reg.get(CLASSES, "", "system-node-critical")
    assert (made.value, made.global_default) == (2000001000, False)
    assert (await reg.get(CLASSES, "", "system-cluster-critical")).value == 2000000000
    with pytest.raises(errors.Forbidden) as err:
        await reg.delete(CLASSES, "", "system-cluster-critical", grace_period_s=None,
                             propagation_policy="")
    assert err.value.message == ('priorityclasses.scheduling.k8s.io "system-cluster-critical" '
                                 'is forbidden: this is a system priority class and cannot be '
                                 'deleted')


# ---------------------------------------------------------------- pod admission

@pytest.mark.parametrize("classes, made, expected", [
    ([], pod(), ("", 0, "PreemptLowerPriority")),
    ([priority_class("high", 1000)], pod(class_name="high"),
     ("high", 1000, "PreemptLowerPriority")),
    ([priority_class("calm", 50, policy="Never")], pod(class_name="calm"),
     ("calm", 50, "Never")),
    ([priority_class("base", 7, default=True)], pod(), ("base", 7, "PreemptLowerPriority")),
    ([priority_class("base", 7, default=True, policy="Never")], pod(), ("base", 7, "Never")),
    ([priority_class("high", 1000)], pod(class_name="high", priority=1000),
     ("high", 1000, "PreemptLowerPriority")),
], ids=["no-class", "named", "never", "global-default", "global-default-never",
        "priority-agrees"])
async def test_pod_priority_comes_from_its_class(reg, classes, made, expected):
    for pc in classes:
        await reg.create(CLASSES, "", pc)
    created = await reg.create(PODS, "default", made)
    spec = created.spec
    assert (spec.priority_class_name, spec.priority, spec.preemption_policy) == expected
    assert spec.HasField("priority")


@pytest.mark.parametrize("classes, made, message", [
    ([], pod("x", class_name="foo"),
     'pods "x" is forbidden: no PriorityClass with name foo was found'),
    ([], pod("x", priority=10),
     'pods "x" is forbidden: the integer value of priority (10) must not be provided in pod '
     'spec; priority admission controller computed 0 from the given PriorityClass name'),
    ([priority_class("high", 1000)], pod("x", class_name="high", preemptionPolicy="Never"),
     'pods "x" is forbidden: the string value of PreemptionPolicy (Never) must not be '
     'provided in pod spec; priority admission controller computed PreemptLowerPriority from '
     'the given PriorityClass name'),
], ids=["unknown-class", "priority-disagrees", "policy-disagrees"])
async def test_pods_that_disagree_with_their_class_are_forbidden(reg, classes, made, message):
    for pc in classes:
        await reg.create(CLASSES, "", pc)
    with pytest.raises(errors.Forbidden) as err:
        await reg.create(PODS, "default", made)
    assert err.value.message == message
    with pytest.raises(errors.NotFound):
        await reg.get(PODS, "default", "x")


async def test_a_generated_name_is_quoted_as_its_generate_name(reg):
    made = pod("", class_name="foo")
    made.metadata.generate_name = "web-7d4b9-"
    with pytest.raises(errors.Forbidden) as err:
        await reg.create(PODS, "default", made)
    assert err.value.message == ('pods "web-7d4b9-" is forbidden: no PriorityClass with name '
                                 'foo was found')


async def test_an_update_that_leaves_priority_out_keeps_it(reg):
    await reg.create(CLASSES, "", priority_class("high", 1000, policy="Never"))
    created = await reg.create(PODS, "default", pod("x", class_name="high"))
    again = type(created)()
    again.CopyFrom(created)
    again.spec.ClearField("priority")
    again.spec.ClearField("preemption_policy")
    again.metadata.labels["touched"] = "yes"
    updated = await reg.update(PODS, again)
    assert (updated.spec.priority, updated.spec.preemption_policy) == (1000, "Never")
    assert updated.metadata.labels["touched"] == "yes"


# ---------------------------------------------------------------- get and describe

def test_get_priorityclasses_columns_are_kubectls():
    import datetime

    from kubemu.cli import printers
    now = datetime.datetime(2026, 11, 30, 10, 0, 0, tzinfo=datetime.timezone.utc)
    docs = [{"metadata": {"name": "system-node-critical",
                          "creationTimestamp": "2026-11-20T10:00:00Z"},
             "value": 2000001000, "preemptionPolicy": "PreemptLowerPriority"},
            {"metadata": {"name": "batch", "creationTimestamp": "2026-11-30T09:59:30Z"},
             "value": -5, "globalDefault": True}]
    opts = printers.TableOptions()
    rows = [printers.headers("priorityclasses", opts)] + [
        printers.row("priorityclasses", d, opts, now) for d in docs]
    # printPriorityClass: PREEMPTIONPOLICY after AGE, empty when unset.
    assert printers.render_table(rows) == (
        "NAME                   VALUE        GLOBAL-DEFAULT   AGE   PREEMPTIONPOLICY\n"
        "system-node-critical   2000001000   false            10d   PreemptLowerPriority\n"
        "batch                  -5           true             30s   \n")


GOLDEN = pathlib.Path(__file__).parent / "kubectl_describe"
DESCRIBED = {
    "high-priority": {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "high-priority", "annotations": {"team": "a"}, "uid": "u1",
                     "creationTimestamp": "2026-11-30T09:00:00Z"},
        "value": 1000000, "description": "For XYZ service pods only.",
        "preemptionPolicy": "Never"},
    "system-node-critical": {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "system-node-critical", "uid": "u2",
                     "creationTimestamp": "2026-11-20T09:00:00Z"},
        "value": 2000001000, "globalDefault": True,
        "description": "Used for system critical pods that must not be moved from their "
                       "current node.",
        "preemptionPolicy": "PreemptLowerPriority"},
}


@pytest.mark.parametrize("name", sorted(DESCRIBED))
def test_describe_priorityclass_is_kubectls(name):
    """kubectl_describe/PriorityClass-<name>.txt is what kubectl 1.32 printed for
    `kubectl describe priorityclass <name>` against a fake API server serving
    exactly the object here (and no events)."""
    import datetime

    from kubemu.cli import common, describe
    served = common.to_json(obj(DESCRIBED[name]))  # through kubemu's message, as served
    now = datetime.datetime(2026, 11, 30, 10, 0, 0, tzinfo=datetime.timezone.utc)
    golden = (GOLDEN / f"PriorityClass-{name}.txt").read_text()
    assert describe.describe(CLASSES, served, [], now) == golden
