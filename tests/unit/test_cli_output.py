"""kubectl get's printers end to end through `kubemu get`, on a fake client.

The parametrized cases were printed by real kubectl (v1.32.5) against a fake
API server serving the objects of cli_kubectl_objects.py; the comment above
each is the kubectl command (its stdout and stderr are the expected values).
kubemu runs the same command line against a fake client holding the same
objects.
"""
from __future__ import annotations

import dataclasses
import datetime

import pytest

from kubemu.api import codec, errors
from kubemu.api.kinds import REGISTRY
from kubemu.cli import common, main, output, printers
from kubemu.cli.common import CliError
from tests.unit.cli_kubectl_objects import PODS

# When the cases were captured (AGE columns are relative to it).
CAPTURED = datetime.datetime(2026, 11, 30, 4, 22, 16, tzinfo=datetime.timezone.utc)


@dataclasses.dataclass
class Listed:
    items: list
    resource_version: str = "1000"


class FakeClient:
    """get and list_all over the fixture pods (namespace default)."""

    def __init__(self, objects: list[dict]):
        self.objects = objects

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        return None

    def _messages(self, resource: str, namespace: str) -> list:
        kind = REGISTRY.resolve(resource)
        return [codec.from_dict(kind.message, o, kind=kind.kind) for o in self.objects
                if o["kind"] == kind.kind and namespace in ("", o["metadata"].get("namespace"))]

    async def get(self, resource, name, namespace=""):
        for m in self._messages(resource, namespace):
            if m.metadata.name == name:
                return m
        raise errors.not_found(REGISTRY.resolve(resource).resource, name)

    async def list_all(self, resource, namespace="", *, label_selector="", field_selector=""):
        assert not field_selector
        from kubemu.api import labels

        selector = labels.parse(label_selector) if label_selector else None
        items = [m for m in self._messages(resource, namespace)
                 if selector is None or selector.matches(dict(m.metadata.labels))]
        return Listed(items)


@pytest.fixture
def kubemu(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(common, "client_for", lambda args: FakeClient(PODS))
    monkeypatch.setattr(printers, "now_utc", lambda: CAPTURED)

    def run(*argv: str) -> tuple[str, str]:
        code = main.main(["--home", str(tmp_path), *argv])
        out, err = capsys.readouterr()
        assert code == (1 if err.startswith("error") or "NotFound" in err else 0), (out, err)
        return out, err
    return run


@pytest.mark.parametrize("argv, out, err", [
    # kubectl get pods -o custom-columns=NAME:.metadata.name,IP:.status.podIP,IMAGES:.spec.containers[*].image,LABELS:.metadata.labels,X:.nope
    pytest.param(['pods', '-o', 'custom-columns=NAME:.metadata.name,IP:.status.podIP,IMAGES:.spec.containers[*].image,LABELS:.metadata.labels,X:.nope'],
                 'NAME    IP           IMAGES                              LABELS                      X\nkuard   10.244.1.7   gcr.io/kuar-demo/kuard-amd64:blue   map[app:kuard tier:front]   <none>\nnginx   10.244.2.3   nginx:1.25                          map[app:nginx]              <none>\ntwo     10.244.1.9   busybox,alpine:3.19                 map[app:two env:dev]        <none>\n',
                 '', id='columns'),
    # kubectl get pods -o 'custom-columns=NAME:metadata.name,C:{.spec.containers[*].name},R:{status.containerStatuses[0].restartCount}' --no-headers
    pytest.param(['pods', '-o', 'custom-columns=NAME:metadata.name,C:{.spec.containers[*].name},R:{status.containerStatuses[0].restartCount}', '--no-headers'],
                 'kuard   web   0\nnginx   web   3\ntwo     a,b   0\n',
                 '', id='columns-relaxed-no-headers'),
    # kubectl get pod kuard -o custom-columns=NAME:.metadata.name,PORTS:.spec.containers[0].ports,CMD:.spec.containers[0].command,TOL:.spec.containers[*].ports[*].containerPort
    pytest.param(['pod', 'kuard', '-o', 'custom-columns=NAME:.metadata.name,PORTS:.spec.containers[0].ports,CMD:.spec.containers[0].command,TOL:.spec.containers[*].ports[*].containerPort'],
                 'NAME    PORTS                                  CMD      TOL\nkuard   [map[containerPort:80 protocol:TCP]]   <none>   80\n',
                 '', id='columns-lists'),
    # kubectl get pod two -o custom-columns=CMD:.spec.containers[0].command,ENV:.spec.containers[0].env
    pytest.param(['pod', 'two', '-o', 'custom-columns=CMD:.spec.containers[0].command,ENV:.spec.containers[0].env'],
                 'CMD                  ENV\n[sh -c sleep 3600]   [map[name:X value:1]]\n',
                 '', id='columns-two'),
    # kubectl get pods -o custom-columns=NAME
    pytest.param(['pods', '-o', 'custom-columns=NAME'],
                 '',
                 'error: unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>\n', id='columns-bad-spec'),
    # kubectl get pods -o custom-columns=
    pytest.param(['pods', '-o', 'custom-columns='],
                 '',
                 'error: custom-columns format specified but no custom columns given\n', id='columns-empty'),
    # kubectl get pods -o 'custom-columns=A:{.x'
    pytest.param(['pods', '-o', 'custom-columns=A:{.x'],
                 '',
                 "error: unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'\n", id='columns-bad-path'),
    # kubectl get pods --sort-by=.status.podIP -o name
    pytest.param(['pods', '--sort-by=.status.podIP', '-o', 'name'],
                 'pod/kuard\npod/two\npod/nginx\n',
                 '', id='sort-ip'),
    # kubectl get pods --sort-by={.spec.containers[0].resources.requests.memory} -o 'jsonpath={.items[*].metadata.name}'
    pytest.param(['pods', '--sort-by={.spec.containers[0].resources.requests.memory}', '-o', 'jsonpath={.items[*].metadata.name}'],
                 'two kuard nginx',
                 '', id='sort-quantity'),
    # kubectl get pods --sort-by=.spec.containers[0].resources.requests.cpu -o custom-columns=N:.metadata.name
    pytest.param(['pods', '--sort-by=.spec.containers[0].resources.requests.cpu', '-o', 'custom-columns=N:.metadata.name'],
                 'N\ntwo\nkuard\nnginx\n',
                 '', id='sort-cpu'),
    # kubectl get pods --sort-by=.status.containerStatuses[0].restartCount -o custom-columns=N:.metadata.name
    pytest.param(['pods', '--sort-by=.status.containerStatuses[0].restartCount', '-o', 'custom-columns=N:.metadata.name'],
                 'N\nkuard\ntwo\nnginx\n',
                 '', id='sort-number'),
    # kubectl get pods --sort-by=.metadata.labels.env -o name
    pytest.param(['pods', '--sort-by=.metadata.labels.env', '-o', 'name'],
                 'pod/nginx\npod/kuard\npod/two\n',
                 '', id='sort-missing-some'),
    # kubectl get pods --sort-by=.metadata.nope -o name
    pytest.param(['pods', '--sort-by=.metadata.nope', '-o', 'name'],
                 '',
                 'error: couldn\'t find any field with path "{.metadata.nope}" in the list of objects\n', id='sort-missing-all'),
    # kubectl get pods --sort-by=.metadata.name -o json
    pytest.param(['pods', '--sort-by=.metadata.name', '-o', 'json'],
                 '{\n    "apiVersion": "v1",\n    "items": [\n        {\n            "apiVersion": "v1",\n            "kind": "Pod",\n            "metadata": {\n                "annotations": {\n                    "note": "a\\u003cb\\u003e\\u0026c"\n                },\n                "creationTimestamp": "2024-05-01T11:00:00Z",\n                "labels": {\n                    "app": "kuard",\n                    "tier": "front"\n                },\n                "name": "kuard",\n                "namespace": "default",\n                "resourceVersion": "12",\n                "uid": "uid-kuard"\n            },\n            "spec": {\n                "containers": [\n                    {\n                        "image": "gcr.io/kuar-demo/kuard-amd64:blue",\n                        "name": "web",\n                        "ports": [\n                            {\n                                "containerPort": 80,\n                                "protocol": "TCP"\n                            }\n                        ],\n                        "resources": {\n                            "requests": {\n                                "cpu": "250m",\n                                "memory": "128Mi"\n                            }\n                        }\n                    }\n                ],\n                "dnsPolicy": "ClusterFirst",\n                "nodeName": "node-1",\n                "restartPolicy": "Always",\n                "terminationGracePeriodSeconds": 30\n            },\n            "status": {\n                "conditions": [\n                    {\n                        "lastTransitionTime": "2024-05-01T11:00:05Z",\n                        "status": "True",\n                        "type": "Ready"\n                    }\n                ],\n                "containerStatuses": [\n                    {\n                        "image": "gcr.io/kuar-demo/kuard-amd64:blue",\n                        "name": "web",\n                        "ready": true,\n                        "restartCount": 0,\n                        "started": true,\n                        "state": {\n                            "running": {\n                                "startedAt": "2024-05-01T11:00:03Z"\n                            }\n                        }\n                    }\n                ],\n                "hostIP": "127.1.0.1",\n                "phase": "Running",\n                "podIP": "10.244.1.7",\n                "qosClass": "Burstable"\n            }\n        },\n        {\n            "apiVersion": "v1",\n            "kind": "Pod",\n            "metadata": {\n                "annotations": {\n                    "note": "a\\u003cb\\u003e\\u0026c"\n                },\n                "creationTimestamp": "2024-05-01T11:00:00Z",\n                "labels": {\n                    "app": "nginx"\n                },\n                "name": "nginx",\n                "namespace": "default",\n                "resourceVersion": "12",\n                "uid": "uid-nginx"\n            },\n            "spec": {\n                "containers": [\n                    {\n                        "image": "nginx:1.25",\n                        "name": "web",\n                        "ports": [\n                            {\n                                "containerPort": 80,\n                                "protocol": "TCP"\n                            }\n                        ],\n                        "resources": {\n                            "requests": {\n                                "cpu": "1",\n                                "memory": "1Gi"\n                            }\n                        }\n                    }\n                ],\n                "dnsPolicy": "ClusterFirst",\n                "nodeName": "node-2",\n                "restartPolicy": "Always",\n                "terminationGracePeriodSeconds": 30\n            },\n            "status": {\n                "conditions": [\n                    {\n                        "lastTransitionTime": "2024-05-01T11:00:05Z",\n                        "status": "True",\n                        "type": "Ready"\n                    }\n                ],\n                "containerStatuses": [\n                    {\n                        "image": "nginx:1.25",\n                        "name": "web",\n                        "ready": true,\n                        "restartCount": 3,\n                        "started": true,\n                        "state": {\n                            "running": {\n                                "startedAt": "2024-05-01T11:00:03Z"\n                            }\n                        }\n                    }\n                ],\n                "hostIP": "127.1.0.1",\n                "phase": "Running",\n                "podIP": "10.244.2.3",\n                "qosClass": "Burstable"\n            }\n        },\n        {\n            "apiVersion": "v1",\n            "kind": "Pod",\n            "metadata": {\n                "creationTimestamp": "2024-05-01T11:00:00Z",\n                "labels": {\n                    "app": "two",\n                    "env": "dev"\n                },\n                "name": "two",\n                "namespace": "default",\n                "resourceVersion": "12",\n                "uid": "uid-two"\n            },\n            "spec": {\n                "containers": [\n                    {\n                        "command": [\n                            "sh",\n                            "-c",\n                            "sleep 3600"\n                        ],\n                        "env": [\n                            {\n                                "name": "X",\n                                "value": "1"\n                            }\n                        ],\n                        "image": "busybox",\n                        "name": "a"\n                    },\n                    {\n                        "args": [\n                            "x",\n                            "y"\n                        ],\n                        "image": "alpine:3.19",\n                        "name": "b"\n                    }\n                ],\n                "dnsPolicy": "ClusterFirst",\n                "nodeName": "node-1",\n                "restartPolicy": "Always",\n                "terminationGracePeriodSeconds": 30\n            },\n            "status": {\n                "conditions": [\n                    {\n                        "lastTransitionTime": "2024-05-01T11:00:05Z",\n                        "status": "True",\n                        "type": "Ready"\n                    }\n                ],\n                "containerStatuses": [\n                    {\n                        "image": "busybox",\n                        "name": "a",\n                        "ready": true,\n                        "restartCount": 0,\n                        "started": true,\n                        "state": {\n                            "running": {\n                                "startedAt": "2024-05-01T11:00:03Z"\n                            }\n                        }\n                    },\n                    {\n                        "image": "alpine:3.19",\n                        "name": "b",\n                        "ready": false,\n                        "restartCount": 0,\n                        "started": true,\n                        "state": {\n                            "waiting": {\n                                "reason": "ImagePullBackOff"\n                            }\n                        }\n                    }\n                ],\n                "hostIP": "127.1.0.1",\n                "phase": "Pending",\n                "podIP": "10.244.1.9",\n                "qosClass": "Burstable"\n            }\n        }\n    ],\n    "kind": "List",\n    "metadata": {\n        "resourceVersion": ""\n    }\n}\n',
                 '', id='sort-json'),
    # kubectl get pods -o name
    pytest.param(['pods', '-o', 'name'],
                 'pod/kuard\npod/nginx\npod/two\n',
                 '', id='name'),
    # kubectl get pod kuard -o name
    pytest.param(['pod', 'kuard', '-o', 'name'],
                 'pod/kuard\n',
                 '', id='name-one'),
    # kubectl get pod two -o json
    pytest.param(['pod', 'two', '-o', 'json'],
                 '{\n    "apiVersion": "v1",\n    "kind": "Pod",\n    "metadata": {\n        "creationTimestamp": "2024-05-01T11:00:00Z",\n        "labels": {\n            "app": "two",\n            "env": "dev"\n        },\n        "name": "two",\n        "namespace": "default",\n        "resourceVersion": "12",\n        "uid": "uid-two"\n    },\n    "spec": {\n        "containers": [\n            {\n                "command": [\n                    "sh",\n                    "-c",\n                    "sleep 3600"\n                ],\n                "env": [\n                    {\n                        "name": "X",\n                        "value": "1"\n                    }\n                ],\n                "image": "busybox",\n                "name": "a"\n            },\n            {\n                "args": [\n                    "x",\n                    "y"\n                ],\n                "image": "alpine:3.19",\n                "name": "b"\n            }\n        ],\n        "dnsPolicy": "ClusterFirst",\n        "nodeName": "node-1",\n        "restartPolicy": "Always",\n        "terminationGracePeriodSeconds": 30\n    },\n    "status": {\n        "conditions": [\n            {\n                "lastTransitionTime": "2024-05-01T11:00:05Z",\n                "status": "True",\n                "type": "Ready"\n            }\n        ],\n        "containerStatuses": [\n            {\n                "image": "busybox",\n                "name": "a",\n                "ready": true,\n                "restartCount": 0,\n                "started": true,\n                "state": {\n                    "running": {\n                        "startedAt": "2024-05-01T11:00:03Z"\n                    }\n                }\n            },\n            {\n                "image": "alpine:3.19",\n                "name": "b",\n                "ready": false,\n                "restartCount": 0,\n                "started": true,\n                "state": {\n                    "waiting": {\n                        "reason": "ImagePullBackOff"\n                    }\n                }\n            }\n        ],\n        "hostIP": "127.1.0.1",\n        "phase": "Pending",\n        "podIP": "10.244.1.9",\n        "qosClass": "Burstable"\n    }\n}\n',
                 '', id='json-one'),
    # kubectl get pod kuard -o yaml
    pytest.param(['pod', 'kuard', '-o', 'yaml'],
                 'apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    note: a<b>&c\n  creationTimestamp: "2024-05-01T11:00:00Z"\n  labels:\n    app: kuard\n    tier: front\n  name: kuard\n  namespace: default\n  resourceVersion: "12"\n  uid: uid-kuard\nspec:\n  containers:\n  - image: gcr.io/kuar-demo/kuard-amd64:blue\n    name: web\n    ports:\n    - containerPort: 80\n      protocol: TCP\n    resources:\n      requests:\n        cpu: 250m\n        memory: 128Mi\n  dnsPolicy: ClusterFirst\n  nodeName: node-1\n  restartPolicy: Always\n  terminationGracePeriodSeconds: 30\nstatus:\n  conditions:\n  - lastTransitionTime: "2024-05-01T11:00:05Z"\n    status: "True"\n    type: Ready\n  containerStatuses:\n  - image: gcr.io/kuar-demo/kuard-amd64:blue\n    name: web\n    ready: true\n    restartCount: 0\n    started: true\n    state:\n      running:\n        startedAt: "2024-05-01T11:00:03Z"\n  hostIP: 127.1.0.1\n  phase: Running\n  podIP: 10.244.1.7\n  qosClass: Burstable\n',
                 '', id='yaml-one'),
    # kubectl get pods -o bogus
    pytest.param(['pods', '-o', 'bogus'],
                 '',
                 'error: unable to match a printer suitable for the output format "bogus", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml\n', id='bad-format'),
])
def test_get_output_matches_kubectl(kubemu, argv, out, err):
    assert kubemu("get", *argv) == (out, err)


def test_custom_columns_file(kubemu, tmp_path):
    path = tmp_path / "columns.txt"
    path.write_text("NAME          IP\n.metadata.name   {.status.podIP}\n")
    # kubectl get pods -o custom-columns-file=columns.txt
    assert kubemu("get", "pods", "-o", f"custom-columns-file={path}") == (
        "NAME    IP\nkuard   10.244.1.7\nnginx   10.244.2.3\ntwo     10.244.1.9\n", "")


def test_label_columns_and_show_labels(kubemu):
    # kubectl get pods -L app -L tier --show-labels puts APP, TIER, then LABELS after the
    # kind's columns, an empty cell where the label is missing.
    out, _ = kubemu("get", "pods", "-L", "app", "-L", "tier", "--show-labels")
    assert out.splitlines() == [
        "NAME    READY   STATUS             RESTARTS   AGE      APP     TIER    LABELS",
        "kuard   1/1     Running            0          2y212d   kuard   front   "
        "app=kuard,tier=front",
        "nginx   1/1     Running            3          2y212d   nginx           app=nginx",
        "two     1/2     ImagePullBackOff   0          2y212d   two             "
        "app=two,env=dev"]


def test_no_headers_and_label_column_path(kubemu):
    out, _ = kubemu("get", "pods", "--no-headers", "-L", "example.com/app,env", "-l", "env")
    assert out == "two   1/2   ImagePullBackOff   0     2y212d         dev\n"


def test_table_sorted_by_field(kubemu):
    out, _ = kubemu("get", "pods", "--sort-by=.status.podIP", "--no-headers")
    assert [line.split()[0] for line in out.splitlines()] == ["kuard", "two", "nginx"]


def test_show_labels_needs_a_table(kubemu):
    # kubectl get pods --show-labels -o name
    assert kubemu("get", "pods", "--show-labels", "-o", "name") == (
        "", "error: --show-labels option cannot be used with name printer\n")


def test_get_one_missing_prints_only_the_error(kubemu):
    # kubectl get pod nope -o 'jsonpath={.kind}'
    assert kubemu("get", "pod", "nope", "-o", "jsonpath={.kind}") == (
        "", 'Error from server (NotFound): pods "nope" not found\n')


def test_object_formats_for_create():
    # kubectl create cm c --from-literal=a=1 --dry-run=client -o wide
    with pytest.raises(CliError) as exc:
        output.make_printer("wide", allowed=output.OBJECT_FORMATS)
    assert str(exc.value) == (
        'unable to match a printer suitable for the output format "wide", allowed formats '
        "are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,"
        "template,templatefile,yaml")


def test_yaml_printer_separates_watched_documents():
    printer = output.make_printer("yaml")
    assert printer.render({"a": 1}) + printer.render({"b": 2}) == "a: 1\n---\nb: 2\n"
