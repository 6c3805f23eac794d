"""go-cmp's struct diff, as Kubernetes appends it to a Forbidden pod update:
markers, tabs, Go field names, aligned values, opened structs and lists,
unchanged runs cut to two records each side of a change."""
from __future__ import annotations

import pytest

from kubemu.api import codec
from kubemu.api.v1 import core_pb2
from kubemu.api.validation import godiff


def container(**fields) -> core_pb2.Container:
    return codec.from_dict(core_pb2.Container, {"name": "app", "image": "nginx:1.25", **fields})


def spec(*containers: core_pb2.Container, **fields) -> core_pb2.PodSpec:
    s = codec.from_dict(core_pb2.PodSpec, fields)
    s.containers.extend(containers)
    return s


def lines(text: str) -> list[str]:
    return text.replace("\t", "→").splitlines()


def test_equal_specs_have_no_diff():
    assert godiff.cmp_diff(spec(container()), spec(container())) == ""


def test_a_changed_container_field_opens_the_list_and_the_element():
    old = spec(container(), container(name="side", image="busybox"), restartPolicy="Always")
    new = spec(container(env=[{"name": "A", "value": "1"}]),
               container(name="side", image="busybox"), restartPolicy="Always")
    assert lines(godiff.cmp_diff(old, new)) == [
        "  core.PodSpec{",
        "  →Volumes:        nil,",
        "  →InitContainers: nil,",
        "  →Containers: []core.Container{",
        "  →→{",
        "  →→→... // 5 identical fields",
        "  →→→Ports:        nil,",
        "  →→→EnvFrom:      nil,",
        '- →→→Env:          nil,',
        '+ →→→Env:          []core.EnvVar{{Name: "A", Value: "1"}},',
        "  →→→Resources:    {},",
        "  →→→VolumeMounts: nil,",
        "  →→→... // 12 identical fields",
        "  →→},",
        '  →→{Name: "side", Image: "busybox"},',  # zero fields left out
        "  →},",
        '  →RestartPolicy:                 "Always",',
        "  →TerminationGracePeriodSeconds: nil,",
        "  →... // 30 identical fields",
        "  }",
    ]
    assert godiff.cmp_diff(old, new).endswith("  }\n")


@pytest.mark.parametrize("field,old,new,removed,added", [
    ("terminationGracePeriodSeconds", 30, 5, "&30", "&5"),
    ("nodeSelector", None, {"disk": "ssd"}, "nil", 'map[string]string{"disk": "ssd"}'),
    ("hostNetwork", None, True, "false", "true"),
], ids=["optional-int", "map", "bool"])
def test_changed_scalars_print_with_their_type_one_line_each(field, old, new, removed, added):
    a = spec(container(), **({field: old} if old is not None else {}))
    b = spec(container(), **{field: new})
    changed = [line for line in lines(godiff.cmp_diff(a, b)) if line[:2] != "  "]
    name = godiff.go_name(core_pb2.PodSpec.DESCRIPTOR.fields_by_name[
        codec_field(field)])
    assert [line.split(":", 1)[0] for line in changed] == [f"- →{name}", f"+ →{name}"]
    assert [line.split(":", 1)[1].strip() for line in changed] == [f"{removed},", f"{added},"]


def codec_field(json_name: str) -> str:
    return next(f.name for f in core_pb2.PodSpec.DESCRIPTOR.fields if f.json_name == json_name)


@pytest.mark.parametrize("json_name,go", [
    ("tty", "TTY"), ("dnsPolicy", "DNSPolicy"), ("hostPID", "HostPID"),
    ("terminationGracePeriodSeconds", "TerminationGracePeriodSeconds"),
], ids=lambda v: v)
def test_go_names_keep_initialisms(json_name, go):
    for message in (core_pb2.PodSpec, core_pb2.Container):
        for field in message.DESCRIPTOR.fields:
            if field.json_name == json_name:
                assert godiff.go_name(field) == go
                return
    pytest.fail(f"no field {json_name}")


def test_a_zero_struct_that_gets_fields_is_opened():
    text = godiff.cmp_diff(spec(container()), spec(container(resources={
        "limits": {"cpu": "1"}})))
    assert "\n  \t\t\tResources: core.ResourceRequirements{\n" \
           '- \t\t\t\tLimits:   nil,\n' \
           '+ \t\t\t\tLimits:   map[string]string{"cpu": "1"},\n' in text


def test_a_single_identical_record_is_shown_rather_than_counted():
    # Three unchanged fields after a change at the end of a run of context:
    # two would be kept, and "... // 1 identical fields" is never written.
    text = godiff.cmp_diff(spec(container()), spec(container(image="x", command=["a"])))
    assert "// 1 identical" not in text
