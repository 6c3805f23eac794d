"""kubemu taint's argument parsing and taint arithmetic, as kubectl does them (no server)."""
from __future__ import annotations

import pytest

from kubemu.cli.common import CliError
from kubemu.cli.nodes import TaintSpec, parse_taint, parse_taint_args, reorganize_taints

T = TaintSpec


@pytest.mark.parametrize(("spec", "expected"), [
    ("dedicated=gpu:NoSchedule", T("dedicated", "gpu", "NoSchedule")),
    ("dedicated:PreferNoSchedule", T("dedicated", "", "PreferNoSchedule")),
    ("example.com/maint=yes:NoExecute", T("example.com/maint", "yes", "NoExecute")),
    ("dedicated", T("dedicated", "", "")),
], ids=["key-value-effect", "key-effect", "prefixed-key", "key-only"])
def test_parse_taint(spec, expected):
    assert parse_taint(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("k=v:Sometimes", "invalid taint effect: Sometimes, unsupported taint effect"),
    ("k=v=w:NoSchedule", "invalid taint spec: k=v=w:NoSchedule"),
    ("a:b:c", "invalid taint spec: a:b:c"),
    ("bad key:NoSchedule", "invalid taint spec: bad key:NoSchedule, name part must consist of"),
], ids=["bad-effect", "two-equals", "two-colons", "bad-key"])
def test_parse_taint_rejects(spec, message):
    with pytest.raises(CliError, match="^" + message.replace("(", r"\(")):
        parse_taint(spec)


def test_parse_taint_args_splits_resources_from_changes():
    resources, adds, removes = parse_taint_args(
        ["nodes", "n1", "n2", "a=b:NoSchedule", "c:NoExecute-", "d-"])
    assert resources == ["nodes", "n1", "n2"]
    assert adds == [T("a", "b", "NoSchedule")]
    assert removes == [T("c", "", "NoExecute"), T("d", "", "")]


@pytest.mark.parametrize(("words", "message"), [
    (["nodes", "n1"], "at least one taint update is required"),
    (["a=b:NoSchedule"], "one or more resources must be specified as <resource> <name>"),
    (["nodes", "a=b:NoSchedule", "n1"], "all resources must be specified before taint changes: n1"),
    (["nodes", "n1", "a=b"], "invalid taint spec: a=b"),
    (["nodes", "n1", "a=b:NoSchedule", "a=c:NoSchedule"],
     "duplicated taints with the same key and effect"),
], ids=["no-change", "no-resource", "resource-after-change", "add-without-effect", "duplicate"])
def test_parse_taint_args_rejects(words, message):
    with pytest.raises(CliError, match=message):
        parse_taint_args(words)


GPU = T("dedicated", "gpu", "NoSchedule")
GPU_EXEC = T("dedicated", "gpu", "NoExecute")
MAINT = T("maint", "", "PreferNoSchedule")


@pytest.mark.parametrize(("old", "adds", "removes", "overwrite", "expected"), [
    ([], [GPU], [], False, ("tainted", [GPU])),
    ([MAINT], [GPU], [], False, ("tainted", [GPU, MAINT])),
    ([GPU, MAINT], [], [T("dedicated", "", "NoSchedule")], False, ("untainted", [MAINT])),
    ([GPU, GPU_EXEC, MAINT], [], [T("dedicated")], False, ("untainted", [MAINT])),
    ([GPU], [T("dedicated", "cpu", "NoSchedule")], [], True,
     ("modified", [T("dedicated", "cpu", "NoSchedule")])),
    ([GPU], [MAINT], [T("dedicated")], False, ("modified", [MAINT])),
], ids=["add", "add-keeps-others", "remove-one-effect", "remove-every-effect-of-key",
        "overwrite", "add-and-remove"])
def test_reorganize_taints(old, adds, removes, overwrite, expected):
    assert reorganize_taints("n1", old, adds, removes, overwrite) == expected


@pytest.mark.parametrize(("old", "adds", "removes", "message"), [
    ([GPU], [T("dedicated", "cpu", "NoSchedule")], [],
     "node n1 already has dedicated taint(s) with same effect(s) and --overwrite is false"),
    ([GPU], [], [T("missing", "", "NoSchedule")], 'taint "missing:NoSchedule" not found'),
], ids=["no-overwrite", "remove-missing"])
def test_reorganize_taints_refuses(old, adds, removes, message):
    with pytest.raises(CliError) as err:
        reorganize_taints("n1", old, adds, removes, False)
    assert str(err.value) == message
