"""The controller's pure parts, without a cluster: what it wants, and which
keys an event concerns."""
from __future__ import annotations

import pytest

from kubemu.api.v1 import core_pb2, meta_pb2

from echo_controller.controller import (LABEL, controlled_by, desired_echo, same_data,
                                        source_keys_of)


def cm(name: str, *, labels: dict[str, str] | None = None, data: dict[str, str] | None = None,
       uid: str = "", owner: tuple[str, str] | None = None) -> core_pb2.ConfigMap:
    obj = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    obj.metadata.name, obj.metadata.namespace, obj.metadata.uid = name, "ns", uid
    obj.metadata.labels.update(labels or {})
    obj.data.update(data or {})
    if owner is not None:
        obj.metadata.owner_references.append(meta_pb2.OwnerReference(
            api_version="v1", kind="ConfigMap", name=owner[0], uid=owner[1], controller=True))
    return obj


def test_the_desired_echo_has_the_data_and_a_controller_reference():
    source = cm("app", labels={LABEL: "true", "team": "a"}, data={"k": "v"}, uid="u1")
    source.binary_data["b"] = b"\x00\x01"

    echo = desired_echo(source)

    assert (echo.metadata.name, echo.metadata.namespace) == ("app-echo", "ns")
    assert dict(echo.data) == {"k": "v"} and dict(echo.binary_data) == {"b": b"\x00\x01"}
    assert not echo.metadata.labels
    assert controlled_by(echo, source) and same_data(echo, source)


@pytest.mark.parametrize("obj, keys", [
    pytest.param(cm("app", labels={LABEL: "true"}), ["ns/app"], id="source"),
    pytest.param(cm("app", labels={LABEL: "yes"}), [], id="label-not-true"),
    pytest.param(cm("app"), [], id="unlabelled"),
    pytest.param(cm("app-echo", owner=("app", "u1")), ["ns/app"], id="echo"),
    pytest.param(cm("app-echo"), ["ns/app"], id="in-the-way-of-an-echo"),
    pytest.param(cm("app-echo", labels={LABEL: "true"}), ["ns/app-echo", "ns/app"],
                 id="labelled-echo-name"),
    pytest.param(cm("-echo"), [], id="only-the-suffix"),
])
def test_the_keys_an_event_concerns(obj, keys):
    assert source_keys_of(obj) == keys


@pytest.mark.parametrize("echo, controlled", [
    pytest.param(cm("app-echo", owner=("app", "u1")), True, id="ours"),
    pytest.param(cm("app-echo", owner=("app", "u0")), False, id="of-an-older-source"),
    pytest.param(cm("app-echo"), False, id="no-owner"),
])
def test_controlled_by(echo, controlled):
    assert controlled_by(echo, cm("app", uid="u1")) is controlled
