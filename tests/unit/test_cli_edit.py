"""`kubemu replace` and `kubemu edit` (with a scripted $KUBE_EDITOR), as kubectl."""
from __future__ import annotations

import json
import sys

import pytest

from kubemu.cli import edit
from tests.unit.cli_memclient import MemClient, install, run_cli

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}}


@pytest.fixture(autouse=True)
def edit_files_in_tmp_path(monkeypatch, tmp_path):
    """The editor's files (kept on purpose after a failed edit) go to the test's dir."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
async def mem(monkeypatch):
    client = install(monkeypatch, await MemClient.new())
    await client.put(DEPLOYMENT)
    return client


# ---------------------------------------------------------------- replace

async def test_replace_updates_without_a_resource_version(mem, capsys, tmp_path):
    data = json.loads(json.dumps(DEPLOYMENT))
    data["spec"]["replicas"] = 4
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    assert await run_cli("replace", "-f", str(path)) == 0
    assert capsys.readouterr().out == "deployment.apps/web replaced\n"
    doc = await mem.doc("deployments", "web")
    assert doc["spec"]["replicas"] == 4
    # The whole object is replaced: a label left out of the file is gone.
    data["metadata"].pop("labels")
    path.write_text(json.dumps(data))
    assert await run_cli("replace", "-f", str(path)) == 0
    assert "labels" not in (await mem.doc("deployments", "web"))["metadata"]


async def test_replace_with_a_stale_resource_version_conflicts(mem, capsys, tmp_path):
    data = json.loads(json.dumps(DEPLOYMENT))
    data["metadata"]["resourceVersion"] = "1"
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    assert await run_cli("replace", "-f", str(path)) == 1
    assert capsys.readouterr().err.startswith("Error from server (Conflict): error when "
                                              f'replacing "{path}": ')


async def test_replace_missing_object_and_no_file(mem, capsys, tmp_path):
    data = json.loads(json.dumps(DEPLOYMENT))
    data["metadata"]["name"] = "nope"
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    assert await run_cli("replace", "-f", str(path)) == 1
    assert capsys.readouterr().err == (f'Error from server (NotFound): error when replacing '
                                       f'"{path}": deployments.apps "nope" not found\n')
    assert await run_cli("replace") == 1
    assert capsys.readouterr().err == "error: must specify one of -f and -k\n"


async def test_replace_force_deletes_then_creates(mem, capsys, tmp_path):
    uid = (await mem.doc("deployments", "web"))["metadata"]["uid"]
    path = tmp_path / "d.json"
    path.write_text(json.dumps(DEPLOYMENT))
    assert await run_cli("replace", "--force", "-f", str(path)) == 0
    assert capsys.readouterr().out == ('deployment.apps "web" deleted\n'
                                       "deployment.apps/web replaced\n")
    assert (await mem.doc("deployments", "web"))["metadata"]["uid"] != uid


# ---------------------------------------------------------------- edit

EDITOR = r'''
import json, pathlib, sys
path = pathlib.Path(sys.argv[2])
state = pathlib.Path(sys.argv[1])
rounds = json.loads(state.read_text())
seen = rounds.setdefault("seen", [])
seen.append(path.read_text())
step = rounds["steps"][len(seen) - 1]
text = path.read_text()
for old, new in step:
    text = text.replace(old, new)
path.write_text(text)
state.write_text(json.dumps(rounds))
'''


def editor(monkeypatch, tmp_path, *steps):
    """$KUBE_EDITOR: round i replaces each (old, new) of steps[i]; records what it saw."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"steps": [list(s) for s in steps]}))
    monkeypatch.setenv("KUBE_EDITOR", f"{sys.executable} {script} {state}")
    monkeypatch.delenv("EDITOR", raising=False)
    return lambda: json.loads(state.read_text())["seen"]


async def test_edit_patches_what_changed(mem, capsys, monkeypatch, tmp_path):
    seen = editor(monkeypatch, tmp_path, [("replicas: 1", "replicas: 3")])
    assert await run_cli("edit", "deployment/web") == 0
    assert capsys.readouterr().out == "deployment.apps/web edited\n"
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 3
    [text] = seen()
    assert text.startswith(edit.HEADER + "apiVersion: apps/v1\nkind: Deployment\n")


async def test_edit_without_change_is_cancelled(mem, capsys, monkeypatch, tmp_path):
    editor(monkeypatch, tmp_path, [("# Please", "#  Please")])   # a comment only
    assert await run_cli("edit", "deploy", "web") == 0
    assert capsys.readouterr() == ("", "Edit cancelled, no changes made.\n")


async def test_edit_emptied_file_is_cancelled(mem, capsys, monkeypatch, tmp_path):
    seen = editor(monkeypatch, tmp_path, [])
    monkeypatch.setenv("KUBE_EDITOR", "sed -i -e '/^[^#]/d'")
    assert await run_cli("edit", "deploy", "web") == 0
    assert capsys.readouterr().err == "Edit cancelled, saved file was empty.\n"
    del seen


async def test_invalid_edit_reopens_with_the_reasons(mem, capsys, monkeypatch, tmp_path):
    seen = editor(monkeypatch, tmp_path, [("replicas: 1", "replicas: -1")],
                  [("replicas: -1", "replicas: 2")])
    assert await run_cli("edit", "deploy/web") == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("deployment.apps/web edited\n",
                          'error: deployments.apps "web" is invalid\n')
    second = seen()[1]
    assert second.startswith(edit.HEADER + '# deployments.apps "web" was not valid:\n'
                             "# * spec.replicas: Invalid value: -1: must be greater than or "
                             "equal to 0\n#\n")
    assert "replicas: -1" in second   # the user's text, not the server's object
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 2


async def test_reopened_file_saved_unchanged_gives_up(mem, capsys, monkeypatch, tmp_path):
    editor(monkeypatch, tmp_path, [("replicas: 1", "replicas: -1")], [])
    assert await run_cli("edit", "deploy/web") == 1
    err = capsys.readouterr().err
    assert err.startswith('error: deployments.apps "web" is invalid\n'
                          'A copy of your changes has been stored to "')
    assert err.endswith('"\nerror: Edit cancelled, no valid changes were saved.\n')


async def test_syntax_error_reopens(mem, capsys, monkeypatch, tmp_path):
    seen = editor(monkeypatch, tmp_path, [("kind: Deployment", "kind: [Deployment")],
                  [("kind: [Deployment", "kind: Deployment"), ("replicas: 1", "replicas: 5")])
    assert await run_cli("edit", "deploy/web") == 0
    assert "# The edited file had a syntax error: error converting YAML to JSON: yaml: line " \
           in seen()[1]
    assert (await mem.doc("deployments", "web"))["spec"]["replicas"] == 5


async def test_changing_the_name_is_refused(mem, capsys, monkeypatch, tmp_path):
    editor(monkeypatch, tmp_path, [("name: web\n  namespace", "name: other\n  namespace")])
    assert await run_cli("edit", "deploy/web") == 1
    assert capsys.readouterr().err.endswith(
        "error: At least one of apiVersion, kind and name was changed\n")


async def test_several_objects_are_edited_as_a_list(mem, capsys, monkeypatch, tmp_path):
    data = json.loads(json.dumps(DEPLOYMENT))
    data["metadata"]["name"] = "api"
    await mem.put(data)
    seen = editor(monkeypatch, tmp_path, [("replicas: 1", "replicas: 2")])
    assert await run_cli("edit", "deploy", "web", "api") == 0
    assert capsys.readouterr().out == "deployment.apps/web edited\ndeployment.apps/api edited\n"
    assert "kind: List" in seen()[0]


def test_hash_on_line_break_and_header():
    assert edit.hash_on_line_break("a\nb\n#c") == "a\n# b\n#c"
    assert edit.header([("syntax", []), ("x was not valid", ["f: bad"])]) == (
        edit.HEADER + "# syntax\n#\n# x was not valid:\n# * f: bad\n#\n")


@pytest.mark.parametrize("env,args,shell", [
    ({}, ["vi"], False),
    ({"EDITOR": "nano"}, ["nano"], False),
    ({"EDITOR": "nano", "KUBE_EDITOR": "code --wait"}, ["code", "--wait"], False),
    ({"KUBE_EDITOR": "sed -i 's/a/b/'", "SHELL": "/bin/sh"},
     ["/bin/sh", "-c", "sed -i 's/a/b/'"], True),
], ids=["default", "editor", "kube-editor-first", "quotes-go-to-the-shell"])
def test_editor_choice_as_kubectl(monkeypatch, env, args, shell):
    for key in ("EDITOR", "KUBE_EDITOR", "SHELL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert edit.editor_args() == (args, shell)
    assert edit.editor_argv(args, shell, "/t/f.yaml")[-1] == (
        f'{args[-1]} "/t/f.yaml"' if shell else "/t/f.yaml")


async def test_a_failing_editor_is_kubectls_error(mem, capsys, monkeypatch):
    monkeypatch.setenv("KUBE_EDITOR", "false")
    assert await run_cli("edit", "deploy/web") == 1
    assert capsys.readouterr().err == 'error: there was a problem with the editor ["false"]\n'


async def test_replace_save_config_records_the_manifest(mem, capsys, tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(DEPLOYMENT))
    assert await run_cli("replace", "-f", str(path), "--save-config") == 0
    annotations = (await mem.doc("deployments", "web"))["metadata"]["annotations"]
    applied = json.loads(annotations["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["spec"]["replicas"] == 1 and applied["metadata"]["name"] == "web"
