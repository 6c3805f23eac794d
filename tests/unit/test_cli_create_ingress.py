"""`kubemu create ingress`: kubectl's generator, compared with what kubectl 1.32 prints."""
from __future__ import annotations

import json

import pytest

from tests.unit.cli_memclient import MemClient, install, run_cli


@pytest.fixture
async def mem(monkeypatch):
    return install(monkeypatch, await MemClient.new())


# kubectl create ingress ARGS --dry-run=client -o json, as kubectl 1.32 printed it.
KUBECTL = {
    'simple-tls-secret': (['x', '--rule=foo.com/bar=svc1:8080,tls=my-cert'],
        {'kind': 'Ingress',
         'apiVersion': 'networking.k8s.io/v1',
         'metadata': {'name': 'x', 'creationTimestamp': None},
         'spec': {'tls': [{'hosts': ['foo.com'], 'secretName': 'my-cert'}],
                  'rules': [{'host': 'foo.com',
                             'http': {'paths': [{'path': '/bar',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 'svc1',
                                                                         'port': {'number': 8080}}}}]}}]},
         'status': {'loadBalancer': {}}}),
    'hosts-paths-default-class-annotation': (['simple', '--rule=foo.com/bar=svc1:8080', '--rule=foo.com/*=svc2:80', '--rule=/path*=svc3:http,tls=my-cert', '--default-backend=defaultsvc:80', '--class=nginx', '--annotation=a=b'],
        {'kind': 'Ingress',
         'apiVersion': 'networking.k8s.io/v1',
         'metadata': {'name': 'simple', 'creationTimestamp': None, 'annotations': {'a': 'b'}},
         'spec': {'ingressClassName': 'nginx',
                  'defaultBackend': {'service': {'name': 'defaultsvc', 'port': {'number': 80}}},
                  'tls': [{'secretName': 'my-cert'}],
                  'rules': [{'host': 'foo.com',
                             'http': {'paths': [{'path': '/bar',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 'svc1',
                                                                         'port': {'number': 8080}}}},
                                                {'path': '/',
                                                 'pathType': 'Prefix',
                                                 'backend': {'service': {'name': 'svc2',
                                                                         'port': {'number': 80}}}}]}},
                            {'http': {'paths': [{'path': '/path',
                                                 'pathType': 'Prefix',
                                                 'backend': {'service': {'name': 'svc3',
                                                                         'port': {'name': 'http'}}}}]}}]},
         'status': {'loadBalancer': {}}}),
    'tls-grouped-by-secret': (['x', '--rule=a.com/=s:80,tls', '--rule=b.com/=s:80,tls', '--rule=a.com/x=s:80,tls', '--rule=c.com/=s:80,tls=k', '--rule=a.com/y=s:80,tls=k'],
        {'kind': 'Ingress',
         'apiVersion': 'networking.k8s.io/v1',
         'metadata': {'name': 'x', 'creationTimestamp': None},
         'spec': {'tls': [{'hosts': ['a.com', 'b.com']},
                          {'hosts': ['c.com'], 'secretName': 'k'}],
                  'rules': [{'host': 'a.com',
                             'http': {'paths': [{'path': '/',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 's',
                                                                         'port': {'number': 80}}}},
                                                {'path': '/x',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 's',
                                                                         'port': {'number': 80}}}},
                                                {'path': '/y',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 's',
                                                                         'port': {'number': 80}}}}]}},
                            {'host': 'b.com',
                             'http': {'paths': [{'path': '/',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 's',
                                                                         'port': {'number': 80}}}}]}},
                            {'host': 'c.com',
                             'http': {'paths': [{'path': '/',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 's',
                                                                         'port': {'number': 80}}}}]}}]},
         'status': {'loadBalancer': {}}}),
    'default-backend-only': (['catch', '--default-backend=svc:http'],
        {'kind': 'Ingress',
         'apiVersion': 'networking.k8s.io/v1',
         'metadata': {'name': 'catch', 'creationTimestamp': None},
         'spec': {'defaultBackend': {'service': {'name': 'svc', 'port': {'name': 'http'}}}},
         'status': {'loadBalancer': {}}}),
    'wildcard-host': (['w', '--rule=*.foo.com/a=svc:80'],
        {'kind': 'Ingress',
         'apiVersion': 'networking.k8s.io/v1',
         'metadata': {'name': 'w', 'creationTimestamp': None},
         'spec': {'rules': [{'host': '*.foo.com',
                             'http': {'paths': [{'path': '/a',
                                                 'pathType': 'Exact',
                                                 'backend': {'service': {'name': 'svc',
                                                                         'port': {'number': 80}}}}]}}]},
         'status': {'loadBalancer': {}}}),
}

# The same, refused: kubectl's messages.
KUBECTL_ERRORS = {
    'bad-rule': (['x', '--rule=foo'], 'error: rule foo is invalid and should be in format host/path=svcname:svcport[,tls[=secret]]\n'),
    'no-port': (['x', '--rule=foo.com/=svc'], 'error: rule foo.com/=svc is invalid and should be in format host/path=svcname:svcport[,tls[=secret]]\n'),
    'nothing': (['x'], 'error: not enough information provided: every ingress has to either specify a default-backend (which catches all traffic) or a list of rules (which catch specific paths)\n'),
    'bad-backend': (['x', '--default-backend=svc'], 'error: default-backend should be in format servicename:serviceport\n'),
    'bad-annotation': (['x', '--default-backend=svc:http', '--annotation=bad'], 'error: annotation bad is invalid and should be in format key=[value]\n'),
}


@pytest.mark.parametrize("argv,expected", KUBECTL.values(), ids=KUBECTL.keys())
async def test_the_generator_prints_what_kubectl_prints(mem, capsys, argv, expected):
    assert await run_cli("create", "ingress", *argv, "--dry-run=client", "-o", "json") == 0
    out = capsys.readouterr().out
    assert json.loads(out) == expected


@pytest.mark.parametrize("argv,message", KUBECTL_ERRORS.values(), ids=KUBECTL_ERRORS.keys())
async def test_bad_rules_are_refused_with_kubectls_message(mem, capsys, argv, message):
    assert await run_cli("create", "ingress", *argv, "--dry-run=client", "-o", "json") == 1
    assert capsys.readouterr().err == message


async def test_create_ingress_for_real(mem, capsys):
    assert await run_cli("create", "ingress", "web", "--rule=web.example.com/*=web:80") == 0
    assert capsys.readouterr().out == "ingress.networking.k8s.io/web created\n"
    doc = await mem.doc("ingresses", "web")
    assert doc["spec"]["rules"][0]["http"]["paths"][0]["pathType"] == "Prefix"
