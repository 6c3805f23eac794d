"""`kubemu set image`: kubectl's arguments and the merge patch each object gets."""
from __future__ import annotations

import pytest

from kubemu.cli import main
from kubemu.cli.common import CliError
from kubemu.cli.set_image import parse_args, set_images


def pod(*containers: tuple[str, str], inits: tuple[tuple[str, str], ...] = ()) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": n, "image": i, "ports": [{"containerPort": 80}]}
                                    for n, i in containers],
                     "initContainers": [{"name": n, "image": i} for n, i in inits]}}


@pytest.mark.parametrize("words,expected", [
    (["pod/web", "main=nginx:1.27"], (["pod/web"], {"main": "nginx:1.27"})),
    (["pods", "a", "b", "main=x", "side=y"], (["pods", "a", "b"], {"main": "x", "side": "y"})),
    (["deploy", "web", "*=nginx"], (["deploy", "web"], {"*": "nginx"})),
], ids=["slash-form", "type-names-two-images", "wildcard"])
def test_parse_args(words, expected):
    assert parse_args(words) == expected


@pytest.mark.parametrize("words,message", [
    (["pod/web"], "at least one image update is required"),
    (["main=nginx"], "one or more resources must be specified as <resource> <name> or "
                     "<resource>/<name>"),
    (["pod/web", "main=x", "pod/other"],
     "all resources must be specified before image changes: pod/other"),
    (["pod/web", "*=x", "main=y"], "all containers are already specified by *, but saw more "
                                   "than one container_name=container_image pairs"),
    (["pod/web", "main="], "invalid image format: main="),
], ids=["no-image", "no-resource", "resource-after-image", "wildcard-and-more", "empty-image"])
def test_parse_args_errors(words, message):
    with pytest.raises(CliError) as err:
        parse_args(words)
    assert str(err.value) == message


def test_one_container_of_a_pod_changes_and_the_list_is_sent_whole():
    doc = pod(("main", "nginx:1.25"), ("side", "busybox"))
    patch, missing = set_images(doc, "Pod", {"main": "nginx:1.27"})
    assert missing == []
    assert patch == {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
        {"name": "side", "image": "busybox", "ports": [{"containerPort": 80}]}]}}
    assert doc["spec"]["containers"][0]["image"] == "nginx:1.25"  # the input is not changed


def test_init_containers_and_the_wildcard():
    doc = pod(("main", "nginx"), inits=(("setup", "busybox"),))
    patch, missing = set_images(doc, "Pod", {"*": "alpine"})
    assert missing == []
    assert [c["image"] for c in patch["spec"]["containers"]] == ["alpine"]
    assert [c["image"] for c in patch["spec"]["initContainers"]] == ["alpine"]
    patch, _ = set_images(doc, "Pod", {"setup": "busybox:1.36"})
    assert set(patch["spec"]) == {"initContainers"}


@pytest.mark.parametrize("images,expect_patch,missing", [
    ({"main": "nginx:1.25"}, False, []),             # already so: nothing sent, nothing printed
    ({"nope": "x"}, False, ["nope"]),
    ({"main": "nginx:1.27", "nope": "x"}, True, ["nope"]),  # the rest is still done
], ids=["unchanged", "unknown-container", "unknown-and-known"])
def test_unchanged_and_unknown_containers(images, expect_patch, missing):
    patch, got_missing = set_images(pod(("main", "nginx:1.25")), "Pod", images)
    assert (patch is not None) is expect_patch
    assert got_missing == missing


@pytest.mark.parametrize("kind,path", [
    ("Deployment", ("spec", "template", "spec")),
    ("CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
], ids=["deployment", "cronjob"])
def test_workloads_change_their_pod_template(kind, path):
    spec = {"containers": [{"name": "main", "image": "nginx:1.25"}]}
    doc = {"kind": kind, "metadata": {"name": "web"}}
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = spec
    patch, _ = set_images(doc, kind, {"main": "nginx:1.27"})
    for key in path:
        patch = patch[key]
    assert patch == {"containers": [{"name": "main", "image": "nginx:1.27"}]}


def test_a_kind_without_pod_template_is_refused_as_kubectl_says():
    with pytest.raises(CliError) as err:
        set_images({"kind": "Service", "spec": {}}, "Service", {"main": "x"})
    assert str(err.value) == ("the object is not a pod or does not have a pod template: "
                              "*v1.Service")


def test_the_command_line_parses_with_options_anywhere():
    args = main.build_parser().parse_args(
        ["set", "image", "-n", "demo", "pod/web", "main=nginx:1.27", "--dry-run=server",
         "--home", "/h"])
    assert (args.args, args.namespace, args.dry_run, args.home) == (
        ["pod/web", "main=nginx:1.27"], "demo", "server", "/h")


def test_set_alone_prints_its_help_and_fails(capsys):
    assert main.main(["set"]) == 1
    assert "image" in capsys.readouterr().err


def test_set_image_without_arguments_says_what_is_missing(capsys):
    assert main.main(["set", "image"]) == 1
    assert capsys.readouterr().err == ("error: one or more resources must be specified as "
                                       "<resource> <name> or <resource>/<name>\n")
