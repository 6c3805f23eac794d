"""kubemu.api.jsonpatch (RFC 6902 and 7386) and kubemu.api.strategicpatch."""
from __future__ import annotations

import pytest

from kubemu.api import jsonpatch, strategicpatch
from kubemu.api.jsonpatch import JSONPatchError

DOC = {"a": {"b": 1, "list": [1, 2, 3]}, "s": "x", "a/b": {"~k": True}}


@pytest.mark.parametrize("ops,want", [
    ([{"op": "add", "path": "/c", "value": 5}], DOC | {"c": 5}),
    ([{"op": "add", "path": "/a/list/1", "value": 9}],
     DOC | {"a": {"b": 1, "list": [1, 9, 2, 3]}}),
    ([{"op": "add", "path": "/a/list/-", "value": 4}],
     DOC | {"a": {"b": 1, "list": [1, 2, 3, 4]}}),
    ([{"op": "remove", "path": "/a/b"}], DOC | {"a": {"list": [1, 2, 3]}}),
    ([{"op": "replace", "path": "/s", "value": "y"}], DOC | {"s": "y"}),
    ([{"op": "replace", "path": "/a~1b/~0k", "value": False}], DOC | {"a/b": {"~k": False}}),
    ([{"op": "move", "from": "/s", "path": "/t"}],
     {k: v for k, v in DOC.items() if k != "s"} | {"t": "x"}),
    ([{"op": "copy", "from": "/a/b", "path": "/c"}], DOC | {"c": 1}),
    ([{"op": "test", "path": "/s", "value": "x"}, {"op": "remove", "path": "/s"}],
     {k: v for k, v in DOC.items() if k != "s"}),
    ([{"op": "replace", "path": "", "value": {"z": 1}}], {"z": 1}),
], ids=["add", "insert", "append", "remove", "replace", "escapes", "move", "copy", "test",
        "whole-document"])
def test_json_patch_operations(ops, want):
    assert jsonpatch.apply(DOC, ops) == want
    assert DOC["a"]["list"] == [1, 2, 3]   # the input is never changed


@pytest.mark.parametrize("ops,message", [
    ([{"op": "replace", "path": "/nope", "value": 1}],
     "replace operation does not apply: doc is missing key: /nope"),
    ([{"op": "remove", "path": "/a/nope"}],
     "remove operation does not apply: doc is missing key: /a/nope"),
    ([{"op": "add", "path": "/x/y", "value": 1}],
     "add operation does not apply: doc is missing path: /x/y"),
    ([{"op": "add", "path": "/a/list/7", "value": 1}],
     "Unable to access invalid index: 7: /a/list/7"),
    ([{"op": "test", "path": "/s", "value": "y"}], "testing value /s failed: test failed"),
    ([{"op": "test", "path": "/a/b", "value": True}], "testing value /a/b failed: test failed"),
    ([{"op": "frob", "path": "/s"}], "Unexpected kind: frob"),
    ({"op": "add"}, "a JSON patch must be a list of operations"),
], ids=["replace-missing", "remove-missing", "add-no-parent", "index", "test", "test-bool-type",
        "unknown-op", "not-a-list"])
def test_json_patch_errors(ops, message):
    with pytest.raises(JSONPatchError) as err:
        jsonpatch.apply(DOC, ops)
    assert str(err.value) == message


def test_merge_patch():
    assert jsonpatch.merge_patch({"a": {"b": 1, "c": 2}, "l": [1]},
                                 {"a": {"b": None, "d": 3}, "l": [2]}) == \
        {"a": {"c": 2, "d": 3}, "l": [2]}


POD = {"spec": {"containers": [
    {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
     "env": [{"name": "A", "value": "1"}]},
    {"name": "side", "image": "busybox"}],
    "tolerations": [{"key": "a"}]},
    "metadata": {"finalizers": ["x"], "labels": {"app": "web"}}}


def test_strategic_merges_containers_by_name():
    out = strategicpatch.apply(POD, {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]}]}})
    web, side = out["spec"]["containers"]
    assert web == {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}],
                   "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    assert side == {"name": "side", "image": "busybox"}
    assert POD["spec"]["containers"][0]["image"] == "nginx:1"


@pytest.mark.parametrize("patch,want", [
    ({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
     lambda spec: [c["name"] for c in spec["containers"]] == ["web"]),
    ({"spec": {"containers": [{"name": "new", "image": "x"}]}},
     lambda spec: [c["name"] for c in spec["containers"]] == ["web", "side", "new"]),
    ({"spec": {"tolerations": [{"key": "b"}]}},
     lambda spec: spec["tolerations"] == [{"key": "b"}]),   # no merge key: replaced
    ({"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "y"}]}},
     lambda spec: spec["containers"] == [{"name": "only", "image": "y"}]),
    ({"spec": {"$patch": "replace", "containers": []}},
     lambda spec: spec == {"containers": []}),
    ({"spec": {"tolerations": None}}, lambda spec: "tolerations" not in spec),
    ({"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
               "containers": [{"name": "web", "image": "z"}]}},
     lambda spec: spec["containers"][0]["image"] == "z"),
], ids=["delete-element", "append", "list-without-key", "replace-list", "replace-map",
        "null-deletes", "set-element-order-ignored"])
def test_strategic_directives(patch, want):
    assert want(strategicpatch.apply(POD, patch)["spec"])


def test_strategic_finalizers_union_and_service_ports_by_port():
    out = strategicpatch.apply(POD, {"metadata": {"finalizers": ["y", "x"]}})
    assert out["metadata"]["finalizers"] == ["x", "y"]
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = strategicpatch.apply(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
                               kind="Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_strategic_element_without_its_merge_key_is_refused():
    with pytest.raises(strategicpatch.StrategicPatchError, match="does not contain declared "
                                                                 "merge key: name"):
        strategicpatch.apply(POD, {"spec": {"containers": [{"image": "x"}]}})
