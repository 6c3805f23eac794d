"""`kubemu create quota`: kubectl's generator, compared with what kubectl 1.32 prints."""
from __future__ import annotations

import json

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli


@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


# kubectl create quota ARGS --dry-run=client -o json, as kubectl 1.32 printed it.
KUBECTL = {
    "hard-and-scopes": (["q", "--hard=pods=3,requests.cpu=1,count/deployments.apps=2",
                         "--scopes=NotTerminating,BestEffort"],
                        {"kind": "ResourceQuota", "apiVersion": "v1",
                         "metadata": {"name": "q", "creationTimestamp": None},
                         "spec": {"hard": {"count/deployments.apps": "2", "pods": "3",
                                           "requests.cpu": "1"},
                                  "scopes": ["NotTerminating", "BestEffort"]},
                         "status": {}}),
    "hard-only": (["q", "--hard=pods=3"],
                  {"kind": "ResourceQuota", "apiVersion": "v1",
                   "metadata": {"name": "q", "creationTimestamp": None},
                   "spec": {"hard": {"pods": "3"}}, "status": {}}),
    "nothing": (["q"], {"kind": "ResourceQuota", "apiVersion": "v1",
                        "metadata": {"name": "q", "creationTimestamp": None},
                        "spec": {}, "status": {}}),
    "canonical-quantities": (["q", "--hard=memory=1024Mi,cpu=1000m"],
                             {"kind": "ResourceQuota", "apiVersion": "v1",
                              "metadata": {"name": "q", "creationTimestamp": None},
                              "spec": {"hard": {"cpu": "1", "memory": "1Gi"}}, "status": {}}),
}

KUBECTL_ERRORS = {
    "no-value": (["q", "--hard=pods"],
                 "error: Invalid argument syntax pods, expected <resource>=<value>\n"),
    "bad-quantity": (["q", "--hard=pods=x"],
                     "error: quantities must match the regular expression "
                     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'\n"),
    "empty-scope": (["q", "--hard=pods=1", "--scopes=BestEffort,"],
                    'error: invalid resource quota scope ""\n'),
}


@pytest.mark.parametrize("argv,expected", KUBECTL.values(), ids=KUBECTL.keys())
async def test_the_generator_prints_what_kubectl_prints(mem, capsys, argv, expected):
    assert await run_cli("create", "quota", *argv, "--dry-run=client", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out) == expected


@pytest.mark.parametrize("argv,message", KUBECTL_ERRORS.values(), ids=KUBECTL_ERRORS.keys())
async def test_bad_flags_are_refused_with_kubectls_message(mem, capsys, argv, message):
    assert await run_cli("create", "quota", *argv, "--dry-run=client", "-o", "json") == 1
    assert capsys.readouterr().err == message


async def test_create_quota_for_real(mem, capsys):
    assert await run_cli("create", "quota", "q", "--hard=pods=3") == 0
    assert capsys.readouterr().out == "resourcequota/q created\n"
    assert (await mem.doc("resourcequotas", "q"))["spec"]["hard"] == {"pods": "3"}


async def test_an_unknown_scope_is_the_apiservers_to_refuse(mem, capsys):
    assert await run_cli("create", "quota", "q", "--hard=pods=1", "--scopes=Foo") == 1
    assert capsys.readouterr().err == (
        'The ResourceQuota "q" is invalid: spec.scopes[0]: Invalid value: "Foo": '
        "unsupported scope\n")
