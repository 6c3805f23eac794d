"""kubectl's command-line conventions, once for every command (kubemu.cli.main.Parser).

Options may stand anywhere among the arguments; boolean flags take =true/=false;
words after `--` go to the command untouched; usage errors are kubectl's.
"""
from __future__ import annotations

import pytest

from kubemu.cli import main


def parse(*argv: str):
    args = main.build_parser().parse_args(list(argv))
    return args


@pytest.mark.parametrize("argv, expected", [
    (["get", "pods", "-n", "demo", "kuard"], {"resources": ["pods", "kuard"], "namespace": "demo"}),
    (["get", "-n", "demo", "pods", "kuard", "-o", "wide"],
     {"resources": ["pods", "kuard"], "namespace": "demo", "output": "wide"}),
    (["get", "pods", "kuard", "-ojsonpath={.metadata.name}", "-A"],
     {"resources": ["pods", "kuard"], "output": "jsonpath={.metadata.name}",
      "all_namespaces": True}),
    (["label", "pods", "--all", "env=dev"], {"args": ["pods", "env=dev"], "all": True}),
    (["label", "pods", "a", "--overwrite", "env=dev", "-n", "x"],
     {"args": ["pods", "a", "env=dev"], "overwrite": True, "namespace": "x"}),
    (["logs", "-n", "demo", "kuard", "-c", "x"],
     {"pod": ["kuard"], "namespace": "demo", "container": "x"}),
    (["logs", "kuard", "web", "-f", "--tail=5"], {"pod": ["kuard", "web"], "follow": True,
                                                  "tail": 5}),
    (["delete", "pod", "-n", "x", "a", "b", "--grace-period=0"],
     {"resources": ["pod", "a", "b"], "namespace": "x", "grace_period": 0}),
    (["describe", "node", "--show-events=false", "n1"],
     {"resources": ["node", "n1"], "show_events": False}),
    (["top", "pod", "--containers", "kuard", "-n", "demo"],
     {"what": "pod", "name": "kuard", "containers": True, "namespace": "demo"}),
    (["create", "configmap", "-n", "dev", "c", "--from-literal=a=1"],
     {"name": "c", "namespace": "dev", "from_literal": ["a=1"]}),
    (["create", "-n", "dev", "secret", "generic", "s"], {"name": "s", "namespace": "dev"}),
    (["run", "--image=busybox", "box", "--restart", "Never"],
     {"name": "box", "image": "busybox", "restart": "Never"}),
    (["cordon", "--dry-run=server", "n1", "n2"], {"nodes": ["n1", "n2"], "dry_run": "server"}),
    (["get", "pods", "--home", "/h"], {"home": "/h"}),
], ids=["get-name-after-namespace", "get-options-first", "get-short-output-joined", "label-all",
        "label-overwrite-between", "logs-container-last", "logs-positional-container",
        "delete-names-after-namespace", "describe-bool-false", "top-name-between",
        "create-nested-namespace", "create-namespace-before-kind", "run-name-after-flag",
        "cordon", "home-after-command"])
def test_options_anywhere(argv, expected):
    args = parse(*argv)
    assert {key: getattr(args, key) for key in expected} == expected


@pytest.mark.parametrize("flag, value", [
    ("--wait=false", False), ("--wait=true", True), ("--wait=0", False), ("--wait=T", True),
    ("--no-wait", False), ("--wait", True),
])
def test_boolean_flags_take_pflag_values(flag, value):
    assert parse("delete", "pod", "a", flag).wait is value


def test_store_true_flag_with_value():
    assert parse("label", "pods", "--all=true", "a=b").all is True
    assert parse("label", "pods", "x", "--overwrite=false", "a=b").overwrite is False


@pytest.mark.parametrize("argv, err", [
    (["get", "pods", "--bogus"], "error: unknown flag: --bogus\nSee 'kubemu get --help' for usage.\n"),
    (["get", "pods", "-x"],
     "error: unknown shorthand flag: 'x' in -x\nSee 'kubemu get --help' for usage.\n"),
    (["delete", "pod", "a", "--wait=maybe"],
     'error: invalid argument "maybe" for "--wait" flag: strconv.ParseBool: parsing "maybe": '
     "invalid syntax\nSee 'kubemu delete --help' for usage.\n"),
    (["create", "service", "externalname", "x"],
     "error: required flag(s) \"external-name\" not set\n"
     "See 'kubemu create service externalname --help' for usage.\n"),
    # seed 000 line 772: the typo is named, not the flag it left out
    (["scale", "deployments", "nginx-deployment", "--replicaa=10"],
     "error: unknown flag: --replicaa\nSee 'kubemu scale --help' for usage.\n"),
    (["scale", "deploy/kuard", "--replica=3"],
     "error: unknown flag: --replica\nSee 'kubemu scale --help' for usage.\n"),
    # seed 001 line 197, seed 004 line 1400: a command kubemu does not have, in cobra's words
    (["certificate", "approve", "csr-1"],
     'error: unknown command "certificate" for "kubemu"\n'),
    (["sacle", "deployments", "kuard"],
     'error: unknown command "sacle" for "kubemu"\n\nDid you mean this?\n\tscale\n'),
    (["gett", "pods"],
     'error: unknown command "gett" for "kubemu"\n\nDid you mean this?\n\tget\n\tset\n'),
    (["rollout", "stauts", "deploy/kuard"],
     "error: unknown command \"stauts\"\nSee 'kubemu rollout -h' for help and examples\n"),
], ids=["unknown-flag", "unknown-shorthand", "bad-bool", "required-flag",
        "unknown-before-required", "no-abbreviation", "unknown-command", "suggestion", "suggestions-sorted",
        "unknown-in-group"])
def test_usage_errors_are_kubectls(argv, err, capsys, tmp_path):
    assert main.main(["--home", str(tmp_path), *argv]) == 1
    assert capsys.readouterr() == ("", err)


def test_words_after_double_dash_are_untouched(monkeypatch):
    from kubemu.cli import pods

    seen: list[list[str]] = []
    # register() binds the command function when the parser is built, so patching the
    # module attribute before main builds it is enough
    monkeypatch.setattr(pods, "run_exec", lambda parsed: seen.append(parsed.trailing) or 0)
    assert main.main(["--home", "/nonexistent", "exec", "pod", "-n", "x", "--", "ls", "-l",
                      "-n", "--home", "y"]) == 0
    assert seen == [["ls", "-l", "-n", "--home", "y"]]


def test_trailing_words_rejected_where_not_accepted(capsys, tmp_path):
    assert main.main(["--home", str(tmp_path), "get", "pods", "--", "x"]) == 1
    assert "unexpected arguments after --: x" in capsys.readouterr().err
