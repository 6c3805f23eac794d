"""Field selectors parse, print and match as Kubernetes' do."""
from __future__ import annotations

import pytest

from kubemu.api import codec, errors, fields
from kubemu.api.kinds import REGISTRY


def make(doc):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    return codec.from_dict(kind.message, doc)


SECRET = {"apiVersion": "v1", "kind": "Secret",
          "metadata": {"name": "token", "namespace": "team-a"},
          "type": "kubernetes.io/service-account-token"}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"},
             "status": {"phase": "Active"}}


@pytest.mark.parametrize("text,canonical,matches", [
    ("", "", True),
    ("metadata.name=token", "metadata.name=token", True),
    ("metadata.name==token", "metadata.name=token", True),
    ("metadata.name!=token", "metadata.name!=token", False),
    ("metadata.name=other", "metadata.name=other", False),
    ("metadata.namespace=team-a,metadata.name=token",
     "metadata.name=token,metadata.namespace=team-a", True),
    ("metadata.namespace=team-a,metadata.name=other",
     "metadata.name=other,metadata.namespace=team-a", False),
    ("type=kubernetes.io/service-account-token", "type=kubernetes.io/service-account-token", True),
    ("type!=Opaque", "type!=Opaque", True),
    ("metadata.name=", "metadata.name=", False),
], ids=lambda v: repr(v) if isinstance(v, str) else None)
def test_secret_field_selectors(text, canonical, matches):
    kind = REGISTRY.by_resource("secrets")
    sel = fields.parse(text, kind)
    assert str(sel) == canonical
    assert sel.matches(make(SECRET)) is matches


def test_field_set_per_kind():
    assert fields.field_set(make(SECRET)) == {
        "metadata.name": "token", "metadata.namespace": "team-a",
        "type": "kubernetes.io/service-account-token"}
    # Cluster-scoped kinds have no metadata.namespace field.
    assert fields.field_set(make(NAMESPACE)) == {"metadata.name": "team-a",
                                                 "status.phase": "Active"}


@pytest.mark.parametrize("resource,text,message", [
    ("secrets", "foo=bar", "field label not supported: foo"),
    ("namespaces", "metadata.namespace=x", "field label not supported: metadata.namespace"),
    ("configmaps", "status.phase=Running", "field label not supported: status.phase"),
    ("secrets", "metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("secrets", r"metadata.name=a\x", r"invalid field selector: invalid escape sequence: \x"),
    ("secrets", "metadata.name=a=b", "invalid field selector: unescaped character in value: ="),
], ids=["unknown-field", "namespace-on-cluster-scoped", "field-of-another-kind", "no-operator",
        "bad-escape", "unescaped-equals"])
def test_bad_selectors(resource, text, message):
    with pytest.raises(errors.BadRequest) as err:
        fields.parse(text, REGISTRY.by_resource(resource))
    assert err.value.message == message


def test_escaped_values_round_trip():
    sel = fields.parse(r"metadata.name=a\,b\=c\\d")
    assert sel.terms[0].value == "a,b=c\\d"
    assert str(sel) == r"metadata.name=a\,b\=c\\d"
    assert sel.matches_fields({"metadata.name": "a,b=c\\d"})


def test_without_kind_any_field_parses_and_missing_fields_read_empty():
    sel = fields.parse("spec.whatever=")
    assert sel.matches(make(SECRET))
    assert not fields.parse("spec.whatever=x").matches(make(SECRET))


def test_requires_exact():
    sel = fields.parse("metadata.name=a,status.phase!=Running")
    assert sel.requires_exact("metadata.name") == "a"
    assert sel.requires_exact("status.phase") is None


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"},
       "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]},
       "status": {"phase": "Running", "podIP": "127.1.0.5"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}
EVENT = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-1.1", "namespace": "default"},
         "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
         "reason": "Scheduled", "type": "Normal", "source": {"component": "default-scheduler"}}


@pytest.mark.parametrize("doc,text,matches", [
    (POD, "spec.nodeName=node-1", True),
    (POD, "spec.nodeName=", False),
    (POD, "spec.nodeName!=node-1,status.phase=Running", False),
    (POD, "status.phase!=Succeeded,status.phase!=Failed", True),
    (POD, "status.podIP=127.1.0.5", True),
    (POD, "spec.hostNetwork=false", True),
    (POD, "spec.restartPolicy=", True),  # not defaulted here: reads as empty
    (NODE, "spec.unschedulable=false", True),
    (NODE, "spec.unschedulable=true", False),
    (NODE, "metadata.name=node-1", True),
    (EVENT, "involvedObject.kind=Pod,involvedObject.name=web-1", True),
    (EVENT, "involvedObject.uid=u2", False),
    (EVENT, "involvedObject.namespace=default,reason=Scheduled,type=Normal", True),
    (EVENT, "source=default-scheduler", True),
], ids=lambda v: v if isinstance(v, str) else None)
def test_kind_fields(doc, text, matches):
    kind = REGISTRY.by_gvk(doc["apiVersion"], doc["kind"])
    assert fields.parse(text, kind).matches(make(doc)) is matches


def test_pod_field_set():
    assert fields.field_set(make(POD)) == {
        "metadata.name": "web-1", "metadata.namespace": "default", "spec.nodeName": "node-1",
        "spec.restartPolicy": "", "spec.schedulerName": "", "spec.serviceAccountName": "",
        "spec.hostNetwork": "false", "status.phase": "Running", "status.podIP": "127.1.0.5",
        "status.nominatedNodeName": ""}


def test_unassigned_pods_selector():
    # What a scheduler and kubelet watch with: pods with/without a node.
    kind = REGISTRY.by_resource("pods")
    unassigned = fields.parse("spec.nodeName=", kind)
    bound = make(POD)
    pending = make({**POD, "spec": {"containers": POD["spec"]["containers"]}})
    assert not unassigned.matches(bound) and unassigned.matches(pending)


def test_field_access_helpers():
    pod = make(POD)
    assert fields.field_value(pod.spec, "node_name") == "node-1"
    assert fields.field_value(pod.spec, "no_such_field", "dflt") == "dflt"
    assert fields.field_value(pod.spec, "termination_grace_period_seconds") is None
    assert fields.field_value(None, "node_name", 1) == 1
    assert fields.field_is_set(pod.spec, "node_name")
    assert not fields.field_is_set(pod.spec, "termination_grace_period_seconds")
    assert not fields.field_is_set(pod.spec, "tolerations")
    assert fields.field_is_set(pod.spec, "containers")
    assert not fields.field_is_set(pod.spec, "no_such_field")
