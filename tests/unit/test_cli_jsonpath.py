"""-o jsonpath / jsonpath-as-json against kubectl 1.32.5's own output.

Every expected value below was printed by real kubectl (v1.32.5) run against a
fake API server that served exactly the objects of cli_kubectl_objects.py;
the comment above each case is the kubectl command that printed it (stdout,
then stderr). Map wildcards over several keys are left out: Go walks maps in
random order, so kubectl has no single answer there.
"""
from __future__ import annotations

import pytest

from kubemu.cli import common, jsonpath, output
from kubemu.cli.common import CliError
from tests.unit.cli_kubectl_objects import CONFIGMAP, pod, pod_list

LIST = pod_list()
KUARD = pod("kuard")
TWO = pod("two")
TINY = CONFIGMAP


def render(output_flag: str, data: dict) -> tuple[str, str]:
    """(stdout, stderr) as kubemu prints them for `-o output_flag`."""
    try:
        return output.make_printer(output_flag).render(data), ""
    except CliError as exc:
        message = common.format_error(exc)
        return "", message if message.endswith("\n") else message + "\n"


@pytest.mark.parametrize("data, template, out, err", [
    # kubectl get pods -o 'jsonpath={.items[*].metadata.name}'
    pytest.param(LIST, '{.items[*].metadata.name}',
                 'kuard nginx two',
                 '', id='names'),
    # kubectl get pod kuard -o 'jsonpath={.metadata.name}'
    pytest.param(KUARD, '{.metadata.name}',
                 'kuard',
                 '', id='one-field'),
    # kubectl get pods -o 'jsonpath={range .items[*]}{.metadata.name}{"\t"}{.status.podIP}{"\n"}{end}'
    pytest.param(LIST, '{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}',
                 'kuard\t10.244.1.7\nnginx\t10.244.2.3\ntwo\t10.244.1.9\n',
                 '', id='range'),
    # kubectl get pods -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}'
    pytest.param(LIST, '{range .items[*]}{.metadata.name}{"\\n"}',
                 'kuard\nnginx\ntwo\n\n',
                 '', id='range-without-end'),
    # kubectl get pods -o 'jsonpath={range .items[*]}[{range .spec.containers[*]}{.name},{end}]{end}'
    pytest.param(LIST, '{range .items[*]}[{range .spec.containers[*]}{.name},{end}]{end}',
                 '[web,][web,][a,b,]',
                 '', id='nested-range'),
    # kubectl get pods -o 'jsonpath={range .items[?(@.metadata.name=="zzz")]}{.metadata.name}{end}after'
    pytest.param(LIST, '{range .items[?(@.metadata.name=="zzz")]}{.metadata.name}{end}after',
                 'after',
                 '', id='range-over-nothing'),
    # kubectl get pods -o 'jsonpath={.items[?(@.metadata.name=="nginx")].status.podIP}'
    pytest.param(LIST, '{.items[?(@.metadata.name=="nginx")].status.podIP}',
                 '10.244.2.3',
                 '', id='filter-eq'),
    # kubectl get pods -o 'jsonpath={.items[?(@.metadata.name!="nginx")].metadata.name}'
    pytest.param(LIST, '{.items[?(@.metadata.name!="nginx")].metadata.name}',
                 'kuard two',
                 '', id='filter-ne'),
    # kubectl get pods -o 'jsonpath={.items[?(@.status.containerStatuses[0].restartCount>1)].metadata.name}'
    pytest.param(LIST, '{.items[?(@.status.containerStatuses[0].restartCount>1)].metadata.name}',
                 'nginx',
                 '', id='filter-gt'),
    # kubectl get pods -o 'jsonpath={.items[?(@.status.containerStatuses[0].restartCount<1)].metadata.name}'
    pytest.param(LIST, '{.items[?(@.status.containerStatuses[0].restartCount<1)].metadata.name}',
                 'kuard two',
                 '', id='filter-lt'),
    # kubectl get pods -o 'jsonpath={.items[?(@.status.containerStatuses[0].restartCount>=3)].metadata.name}'
    pytest.param(LIST, '{.items[?(@.status.containerStatuses[0].restartCount>=3)].metadata.name}',
                 'nginx',
                 '', id='filter-ge'),
    # kubectl get pods -o 'jsonpath={.items[?(@.status.containerStatuses[0].restartCount<=0)].metadata.name}'
    pytest.param(LIST, '{.items[?(@.status.containerStatuses[0].restartCount<=0)].metadata.name}',
                 'kuard two',
                 '', id='filter-le'),
    # kubectl get pods -o 'jsonpath={.items[?(@.metadata.name<"o")].metadata.name}'
    pytest.param(LIST, '{.items[?(@.metadata.name<"o")].metadata.name}',
                 'kuard nginx',
                 '', id='filter-string-lt'),
    # kubectl get pods -o 'jsonpath={.items[?(@.status.containerStatuses[0].ready==true)].metadata.name}'
    pytest.param(LIST, '{.items[?(@.status.containerStatuses[0].ready==true)].metadata.name}',
                 'kuard nginx two',
                 '', id='filter-bool'),
    # kubectl get pods -o 'jsonpath={.items[?(@.spec.containers[0].command)].metadata.name}'
    pytest.param(LIST, '{.items[?(@.spec.containers[0].command)].metadata.name}',
                 'two',
                 '', id='filter-exists'),
    # kubectl get pods -o 'jsonpath={.items[?(@.metadata.labels.env)].metadata.name}'
    pytest.param(LIST, '{.items[?(@.metadata.labels.env)].metadata.name}',
                 'two',
                 '', id='filter-exists-label'),
    # kubectl get pod two -o 'jsonpath={.status.containerStatuses[?(@.ready)].name}'
    pytest.param(TWO, '{.status.containerStatuses[?(@.ready)].name}',
                 'a b',
                 '', id='filter-in-list'),
    # kubectl get pods -o 'jsonpath={.items[0:2].metadata.name}'
    pytest.param(LIST, '{.items[0:2].metadata.name}',
                 'kuard nginx',
                 '', id='slice'),
    # kubectl get pods -o 'jsonpath={.items[-1:].metadata.name}'
    pytest.param(LIST, '{.items[-1:].metadata.name}',
                 'two',
                 '', id='slice-negative'),
    # kubectl get pods -o 'jsonpath={.items[-1].metadata.name}'
    pytest.param(LIST, '{.items[-1].metadata.name}',
                 'two',
                 '', id='index-negative'),
    # kubectl get pods -o 'jsonpath={.items[1:].metadata.name}'
    pytest.param(LIST, '{.items[1:].metadata.name}',
                 'nginx two',
                 '', id='slice-open'),
    # kubectl get pods -o 'jsonpath={.items[::2].metadata.name}'
    pytest.param(LIST, '{.items[::2].metadata.name}',
                 'kuard two',
                 '', id='slice-step'),
    # kubectl get pods -o 'jsonpath={.items[1:1]}'
    pytest.param(LIST, '{.items[1:1]}',
                 '',
                 '', id='slice-empty'),
    # kubectl get pods -o 'jsonpath={.items[0,2].metadata.name}'
    pytest.param(LIST, '{.items[0,2].metadata.name}',
                 'kuard two',
                 '', id='union-index'),
    # kubectl get pods -o 'jsonpath={.items[*]['\''metadata.name'\'', '\''status.podIP'\'']}'
    pytest.param(LIST, "{.items[*]['metadata.name', 'status.podIP']}",
                 'kuard nginx two 10.244.1.7 10.244.2.3 10.244.1.9',
                 '', id='union-keys'),
    # kubectl get pods -o 'jsonpath={.items[0].metadata['\''name'\'']}'
    pytest.param(LIST, "{.items[0].metadata['name']}",
                 'kuard',
                 '', id='dict-key'),
    # kubectl get pods -o 'jsonpath={.items[*].spec.containers[*].name}'
    pytest.param(LIST, '{.items[*].spec.containers[*].name}',
                 'web web a b',
                 '', id='wildcard-nested'),
    # kubectl get pods -o 'jsonpath={..metadata.name}'
    pytest.param(LIST, '{..metadata.name}',
                 'kuard nginx two',
                 '', id='recursive'),
    # kubectl get pod kuard -o 'jsonpath={..containerPort}'
    pytest.param(KUARD, '{..containerPort}',
                 '80',
                 '', id='recursive-field'),
    # kubectl get pod kuard -o 'jsonpath={.metadata.labels}'
    pytest.param(KUARD, '{.metadata.labels}',
                 '{"app":"kuard","tier":"front"}',
                 '', id='map-as-json'),
    # kubectl get pods -o 'jsonpath={.items[*].metadata.labels}'
    pytest.param(LIST, '{.items[*].metadata.labels}',
                 '{"app":"kuard","tier":"front"} {"app":"nginx"} {"app":"two","env":"dev"}',
                 '', id='maps-joined'),
    # kubectl get pod kuard -o 'jsonpath={.spec.containers[0].ports}'
    pytest.param(KUARD, '{.spec.containers[0].ports}',
                 '[{"containerPort":80,"protocol":"TCP"}]',
                 '', id='list-as-json'),
    # kubectl get pod kuard -o 'jsonpath={.metadata.annotations}'
    pytest.param(KUARD, '{.metadata.annotations}',
                 '{"note":"a\\u003cb\\u003e\\u0026c"}',
                 '', id='html-escaped'),
    # kubectl get pods -o 'jsonpath={.items[0].spec.containers[0].ports[0].containerPort}'
    pytest.param(LIST, '{.items[0].spec.containers[0].ports[0].containerPort}',
                 '80',
                 '', id='number'),
    # kubectl get pods -o 'jsonpath={.items[0].status.containerStatuses[0].ready}'
    pytest.param(LIST, '{.items[0].status.containerStatuses[0].ready}',
                 'true',
                 '', id='bool'),
    # kubectl get pods -o 'jsonpath={.kind} {$.apiVersion} {.metadata}'
    pytest.param(LIST, '{.kind} {$.apiVersion} {.metadata}',
                 'List v1 {"resourceVersion":""}',
                 '', id='root-and-list-meta'),
    # kubectl get pod kuard -o 'jsonpath=name: {.metadata.name}\n'
    pytest.param(KUARD, 'name: {.metadata.name}\\n',
                 'name: kuard\\n',
                 '', id='text-and-literals'),
    # kubectl get pods -o 'jsonpath={.items[*].metadata.name}{"\n"}'
    pytest.param(LIST, '{.items[*].metadata.name}{"\\n"}',
                 'kuard nginx two\n',
                 '', id='quoted-newline'),
    # kubectl get pod kuard -o 'jsonpath={'\''\u00e9'\''}{'\''\x41'\''}{"\t|"}'
    pytest.param(KUARD, '{\'\\u00e9\'}{\'\\x41\'}{"\\t|"}',
                 'éA\t|',
                 '', id='quoted-escapes'),
    # kubectl get pods -o 'jsonpath={ .items[0].metadata.name }'
    pytest.param(LIST, '{ .items[0].metadata.name }',
                 'kuard',
                 '', id='spaces-in-action'),
    # kubectl get pods -o 'jsonpath={.items[0].metadata.name}{.items[1].metadata.name}'
    pytest.param(LIST, '{.items[0].metadata.name}{.items[1].metadata.name}',
                 'kuardnginx',
                 '', id='adjacent'),
    # kubectl get pods -o 'jsonpath={.items[*].metadata.nope}{"|"}{.items[0].nope.deeper}|'
    pytest.param(LIST, '{.items[*].metadata.nope}{"|"}{.items[0].nope.deeper}|',
                 '||',
                 '', id='missing-keys'),
    # kubectl get cm tiny -o 'jsonpath={@}'
    pytest.param(TINY, '{@}',
                 '{"apiVersion":"v1","data":{"a":"1","b":"two"},"kind":"ConfigMap","metadata":{"name":"tiny","namespace":"default"}}',
                 '', id='whole-object'),
    # kubectl get pods -o 'jsonpath={.foo'
    pytest.param(LIST, '{.foo',
                 '',
                 'error: error parsing jsonpath {.foo, unclosed action\n', id='err-unclosed'),
    # kubectl get pods -o 'jsonpath={.items[?(@.x)'
    pytest.param(LIST, '{.items[?(@.x)',
                 '',
                 'error: error parsing jsonpath {.items[?(@.x), unclosed array expect ]\n', id='err-unclosed-filter'),
    # kubectl get pods -o 'jsonpath={.items[a]}'
    pytest.param(LIST, '{.items[a]}',
                 '',
                 'error: error parsing jsonpath {.items[a]}, invalid array index a\n', id='err-bad-index'),
    # kubectl get pods -o 'jsonpath={"unterminated}'
    pytest.param(LIST, '{"unterminated}',
                 '',
                 'error: error parsing jsonpath {"unterminated}, unterminated quoted string\n', id='err-unterminated-quote'),
    # kubectl get pods -o 'jsonpath={.items[*].metadata.name#}'
    pytest.param(LIST, '{.items[*].metadata.name#}',
                 '',
                 '', id='err-bad-char'),
    # kubectl get cm tiny -o 'jsonpath={.data[5]}'
    pytest.param(TINY, '{.data[5]}',
                 '',
                 'error: error executing jsonpath "{.data[5]}": Error executing template: map[string]interface {} is not array or slice. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{.data[5]}\n\tobject given to jsonpath engine was:\n\t\tmap[string]interface {}{"apiVersion":"v1", "data":map[string]interface {}{"a":"1", "b":"two"}, "kind":"ConfigMap", "metadata":map[string]interface {}{"name":"tiny", "namespace":"default"}}\n\n\n', id='err-out-of-bounds'),
    # kubectl get cm tiny -o 'jsonpath={.data.a[0]}'
    pytest.param(TINY, '{.data.a[0]}',
                 '',
                 'error: error executing jsonpath "{.data.a[0]}": Error executing template: string is not array or slice. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{.data.a[0]}\n\tobject given to jsonpath engine was:\n\t\tmap[string]interface {}{"apiVersion":"v1", "data":map[string]interface {}{"a":"1", "b":"two"}, "kind":"ConfigMap", "metadata":map[string]interface {}{"name":"tiny", "namespace":"default"}}\n\n\n', id='err-not-array'),
    # kubectl get cm tiny -o 'jsonpath={.data[2:1]}'
    pytest.param(TINY, '{.data[2:1]}',
                 '',
                 'error: error executing jsonpath "{.data[2:1]}": Error executing template: map[string]interface {} is not array or slice. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{.data[2:1]}\n\tobject given to jsonpath engine was:\n\t\tmap[string]interface {}{"apiVersion":"v1", "data":map[string]interface {}{"a":"1", "b":"two"}, "kind":"ConfigMap", "metadata":map[string]interface {}{"name":"tiny", "namespace":"default"}}\n\n\n', id='err-start-after-end'),
    # kubectl get cm tiny -o 'jsonpath={end}'
    pytest.param(TINY, '{end}',
                 '',
                 'error: error executing jsonpath "{end}": Error executing template: not in range, nothing to end. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{end}\n\tobject given to jsonpath engine was:\n\t\tmap[string]interface {}{"apiVersion":"v1", "data":map[string]interface {}{"a":"1", "b":"two"}, "kind":"ConfigMap", "metadata":map[string]interface {}{"name":"tiny", "namespace":"default"}}\n\n\n', id='err-end-without-range'),
    # kubectl get cm tiny -o 'jsonpath={foo}'
    pytest.param(TINY, '{foo}',
                 '',
                 'error: error executing jsonpath "{foo}": Error executing template: unrecognized identifier foo. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{foo}\n\tobject given to jsonpath engine was:\n\t\tmap[string]interface {}{"apiVersion":"v1", "data":map[string]interface {}{"a":"1", "b":"two"}, "kind":"ConfigMap", "metadata":map[string]interface {}{"name":"tiny", "namespace":"default"}}\n\n\n', id='err-unknown-identifier'),
    # kubectl get cm tiny -o 'jsonpath={.metadata[?(@.name==3)]}'
    pytest.param(TINY, '{.metadata[?(@.name==3)]}',
                 '',
                 'error: error executing jsonpath "{.metadata[?(@.name==3)]}": Error executing template: map[name:tiny namespace:default] is not array or slice and cannot be filtered. Printing more information for debugging the template:\n\ttemplate was:\n\t\t{.metadata[?(@.name==3)]}\n\tobject given to jsonpath engine was:\n\t\tmap[string]interface {}{"apiVersion":"v1", "data":map[string]interface {}{"a":"1", "b":"two"}, "kind":"ConfigMap", "metadata":map[string]interface {}{"name":"tiny", "namespace":"default"}}\n\n\n', id='err-filter-not-array'),
])
def test_jsonpath_matches_kubectl(data, template, out, err):
    assert render(f"jsonpath={template}", data) == (out, err)


@pytest.mark.parametrize("data, template, out, err", [
    # kubectl get pod kuard -o 'jsonpath-as-json={.metadata.name}'
    pytest.param(KUARD, '{.metadata.name}',
                 '[\n    "kuard"\n]\n',
                 '', id='as-json-one'),
    # kubectl get pods -o 'jsonpath-as-json={.items[*].metadata.name}'
    pytest.param(LIST, '{.items[*].metadata.name}',
                 '[\n    "kuard",\n    "nginx",\n    "two"\n]\n',
                 '', id='as-json-many'),
    # kubectl get pods -o 'jsonpath-as-json={.items[0].metadata.labels}{.items[1].status.podIP}'
    pytest.param(LIST, '{.items[0].metadata.labels}{.items[1].status.podIP}',
                 '[\n    {\n        "app": "kuard",\n        "tier": "front"\n    }\n]\n[\n    "10.244.2.3"\n]\n',
                 '', id='as-json-two-actions'),
])
def test_jsonpath_as_json_matches_kubectl(data, template, out, err):
    assert render(f"jsonpath-as-json={template}", data) == (out, err)


def test_jsonpath_file(tmp_path):
    path = tmp_path / "t.jsonpath"
    path.write_text("{.metadata.name}")
    assert render(f"jsonpath-file={path}", KUARD) == ("kuard", "")
    # kubectl get pods -o jsonpath-file=/tmp/nope
    assert render(f"jsonpath-file={tmp_path}/nope", KUARD) == (
        "", f"error: error reading --template {tmp_path}/nope, open {tmp_path}/nope: no such "
            "file or directory\n")


def test_empty_template_is_kubectls_error():
    # kubectl get pods -o jsonpath=
    assert render("jsonpath=", LIST) == ("", "error: template format specified but no template "
                                             "given\n")


def test_missing_keys_are_errors_when_not_allowed():
    path = jsonpath.JSONPath("{.metadata.nope}", allow_missing_keys=False)
    with pytest.raises(jsonpath.JSONPathError, match="^nope is not found$"):
        path.execute(KUARD)


@pytest.mark.parametrize("expression, relaxed", [
    ("metadata.name", "{.metadata.name}"), (".metadata.name", "{.metadata.name}"),
    ("{metadata.name}", "{.metadata.name}"), ("{.metadata.name}", "{.metadata.name}"),
], ids=["bare", "dot", "braces", "full"])
def test_relaxed_expressions(expression, relaxed):
    assert jsonpath.relaxed(expression) == relaxed


def test_deep_data_does_not_exhaust_the_stack():
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    node["leaf"] = 1
    assert jsonpath.JSONPath("{..leaf}").execute(deep) == "1"
