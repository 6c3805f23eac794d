"""kubectl's generators (`run`, `create secret|service|deployment|...`) with --dry-run=client.

Every expected value below was printed by real kubectl (v1.32.5), run in a
directory holding the certificate and keys below; the comment above each case
is the kubectl command (stdout, then stderr). A client dry run sends nothing,
so kubemu runs the same command line with no cluster at all.
"""
from __future__ import annotations

import pytest

from kubemu.cli import main

# openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ...
TLS_CRT = '-----BEGIN CERTIFICATE-----\nMIIBijCCATGgAwIBAgIUUEF/UCRtv+vxpWrxHmaWuFVdAtowCgYIKoZIzj0EAwIw\nGjEYMBYGA1UEAwwPd2ViLmV4YW1wbGUuY29tMCAXDTI2MTEzMDA0MjMwOFoYDzIx\nMjYxMTA2MDQyMzA4WjAaMRgwFgYDVQQDDA93ZWIuZXhhbXBsZS5jb20wWTATBgcq\nhkjOPQIBBggqhkjOPQMBBwNCAAS2pOCJxzFIj6bDpb1JP6T1VBozOIJYUqumDGRy\nXWjspQ4OMU7qvsYTM9Vum+qHOHrdsxPATMPrJh3N0QGgFmS5o1MwUTAdBgNVHQ4E\nFgQU4R54JYooZ/BKFYigMZ7jyQHxWU8wHwYDVR0jBBgwFoAU4R54JYooZ/BKFYig\nMZ7jyQHxWU8wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBFyNr6\nv++fkOqKAHRck9O11wtrZl+Kd88GUoIfy52uYwIgSaVZ9l23++Au4jNkVuuirQrc\n34cD/f2CTd/ueq8alR4=\n-----END CERTIFICATE-----\n'
TLS_KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVnF3g/DO5ofHocP4\nT3eDwnQvnBZjc/e8N/8qSbArCHahRANCAAS2pOCJxzFIj6bDpb1JP6T1VBozOIJY\nUqumDGRyXWjspQ4OMU7qvsYTM9Vum+qHOHrdsxPATMPrJh3N0QGgFmS5\n-----END PRIVATE KEY-----\n'
OTHER_KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg8i0zA/vZOLH6/mk2\nHGZ2BljPiPStohlehXuAW1tFroyhRANCAASWXLY/x6BdezJ03XfIpu3er9Esisvo\nMF2chhVDLNix6BRwDupqdLu1pJ96W69AqHFRFToFZIdgSEqQ3H7s9e35\n-----END PRIVATE KEY-----\n'
GARBAGE_CRT = 'not a certificate\n'


@pytest.fixture
def kubemu(tmp_path, monkeypatch, capsys):
    for name, text in (("tls.crt", TLS_CRT), ("tls.key", TLS_KEY), ("other.key", OTHER_KEY),
                       ("garbage.crt", GARBAGE_CRT)):
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)

    def run(argv: list[str]) -> tuple[int, str, str]:
        code = main.main(["--home", str(tmp_path / "no-cluster"), *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.mark.parametrize("argv, out, err", [
    # kubectl run nginx --image=nginx --dry-run=client -o yaml
    pytest.param(['run', 'nginx', '--image=nginx', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n    run: nginx\n  name: nginx\nspec:\n  containers:\n  - image: nginx\n    name: nginx\n    resources: {}\n  dnsPolicy: ClusterFirst\n  restartPolicy: Always\nstatus: {}\n',
                 '', id='run'),
    # kubectl run web --image=nginx:1.25 --restart=Never --env=A=1 --env=B=two --port=8080 --labels=app=web,tier=x --dry-run=client -o yaml -- sh -c 'echo hi'
    pytest.param(['run', 'web', '--image=nginx:1.25', '--restart=Never', '--env=A=1', '--env=B=two', '--port=8080', '--labels=app=web,tier=x', '--dry-run=client', '-o', 'yaml', '--', 'sh', '-c', 'echo hi'],
                 'apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n    app: web\n    tier: x\n  name: web\nspec:\n  containers:\n  - args:\n    - sh\n    - -c\n    - echo hi\n    env:\n    - name: A\n      value: "1"\n    - name: B\n      value: two\n    image: nginx:1.25\n    name: web\n    ports:\n    - containerPort: 8080\n    resources: {}\n  dnsPolicy: ClusterFirst\n  restartPolicy: Never\nstatus: {}\n',
                 '', id='run-flags'),
    # kubectl run web --image=nginx --command --restart=OnFailure --dry-run=client -o json -- sleep 10
    pytest.param(['run', 'web', '--image=nginx', '--command', '--restart=OnFailure', '--dry-run=client', '-o', 'json', '--', 'sleep', '10'],
                 '{\n    "kind": "Pod",\n    "apiVersion": "v1",\n    "metadata": {\n        "name": "web",\n        "creationTimestamp": null,\n        "labels": {\n            "run": "web"\n        }\n    },\n    "spec": {\n        "containers": [\n            {\n                "name": "web",\n                "image": "nginx",\n                "command": [\n                    "sleep",\n                    "10"\n                ],\n                "resources": {}\n            }\n        ],\n        "restartPolicy": "OnFailure",\n        "dnsPolicy": "ClusterFirst"\n    },\n    "status": {}\n}\n',
                 '', id='run-command-json'),
    # kubectl run web --image=nginx --dry-run=client -o json -n demo --annotations=a=b --image-pull-policy=IfNotPresent --privileged
    pytest.param(['run', 'web', '--image=nginx', '--dry-run=client', '-o', 'json', '-n', 'demo', '--annotations=a=b', '--image-pull-policy=IfNotPresent', '--privileged'],
                 '{\n    "kind": "Pod",\n    "apiVersion": "v1",\n    "metadata": {\n        "name": "web",\n        "namespace": "demo",\n        "creationTimestamp": null,\n        "labels": {\n            "run": "web"\n        },\n        "annotations": {\n            "a": "b"\n        }\n    },\n    "spec": {\n        "containers": [\n            {\n                "name": "web",\n                "image": "nginx",\n                "resources": {},\n                "imagePullPolicy": "IfNotPresent",\n                "securityContext": {\n                    "privileged": true\n                }\n            }\n        ],\n        "restartPolicy": "Always",\n        "dnsPolicy": "ClusterFirst"\n    },\n    "status": {}\n}\n',
                 '', id='run-more-json'),
    # kubectl run web --image=nginx --dry-run=client
    pytest.param(['run', 'web', '--image=nginx', '--dry-run=client'],
                 'pod/web created (dry run)\n',
                 '', id='run-default'),
    # kubectl run web --image=nginx --dry-run=client -o name
    pytest.param(['run', 'web', '--image=nginx', '--dry-run=client', '-o', 'name'],
                 'pod/web\n',
                 '', id='run-name'),
    # kubectl run web --image=nginx --dry-run=client -o jsonpath={.metadata}
    pytest.param(['run', 'web', '--image=nginx', '--dry-run=client', '-o', 'jsonpath={.metadata}'],
                 '{"creationTimestamp":null,"labels":{"run":"web"},"name":"web"}',
                 '', id='run-jsonpath'),
    # kubectl run box --image=busybox --dry-run=client -o yaml sleep 10
    pytest.param(['run', 'box', '--image=busybox', '--dry-run=client', '-o', 'yaml', 'sleep', '10'],
                 'apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n    run: box\n  name: box\nspec:\n  containers:\n  - args:\n    - sleep\n    - "10"\n    image: busybox\n    name: box\n    resources: {}\n  dnsPolicy: ClusterFirst\n  restartPolicy: Always\nstatus: {}\n',
                 '', id='run-args-without-dashes'),
    # kubectl run web --image=nginx --env=1BAD=x --dry-run=client
    pytest.param(['run', 'web', '--image=nginx', '--env=1BAD=x', '--dry-run=client'],
                 '',
                 'error: invalid env: 1BAD=x\n', id='run-bad-env'),
    # kubectl run web --image=nginx --labels=a --dry-run=client
    pytest.param(['run', 'web', '--image=nginx', '--labels=a', '--dry-run=client'],
                 '',
                 'error: unexpected label spec: a\n', id='run-bad-labels'),
    # kubectl run web --image=NGINX --dry-run=client
    pytest.param(['run', 'web', '--image=NGINX', '--dry-run=client'],
                 '',
                 'error: Invalid image name "NGINX": invalid reference format\n', id='run-bad-image'),
    # kubectl run web --dry-run=client
    pytest.param(['run', 'web', '--dry-run=client'],
                 '',
                 'error: required flag(s) "image" not set\n', id='run-no-image'),
    # kubectl create secret tls web-tls --cert=tls.crt --key=tls.key --dry-run=client -o yaml
    pytest.param(['create', 'secret', 'tls', 'web-tls', '--cert=tls.crt', '--key=tls.key', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\ndata:\n  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJpakNDQVRHZ0F3SUJBZ0lVVUVGL1VDUnR2K3Z4cFdyeEhtYVd1RlZkQXRvd0NnWUlLb1pJemowRUF3SXcKR2pFWU1CWUdBMVVFQXd3UGQyVmlMbVY0WVcxd2JHVXVZMjl0TUNBWERUSTJNVEV6TURBME1qTXdPRm9ZRHpJeApNall4TVRBMk1EUXlNekE0V2pBYU1SZ3dGZ1lEVlFRRERBOTNaV0l1WlhoaGJYQnNaUzVqYjIwd1dUQVRCZ2NxCmhrak9QUUlCQmdncWhrak9QUU1CQndOQ0FBUzJwT0NKeHpGSWo2YkRwYjFKUDZUMVZCb3pPSUpZVXF1bURHUnkKWFdqc3BRNE9NVTdxdnNZVE05VnVtK3FIT0hyZHN4UEFUTVBySmgzTjBRR2dGbVM1bzFNd1VUQWRCZ05WSFE0RQpGZ1FVNFI1NEpZb29aL0JLRllpZ01aN2p5UUh4V1U4d0h3WURWUjBqQkJnd0ZvQVU0UjU0Sllvb1ovQktGWWlnCk1aN2p5UUh4V1U4d0R3WURWUjBUQVFIL0JBVXdBd0VCL3pBS0JnZ3Foa2pPUFFRREFnTkhBREJFQWlCRnlOcjYKdisrZmtPcUtBSFJjazlPMTF3dHJabCtLZDg4R1VvSWZ5NTJ1WXdJZ1NhVlo5bDIzKytBdTRqTmtWdXVpclFyYwozNGNEL2YyQ1RkL3VlcThhbFI0PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==\n  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZ1ZuRjNnL0RPNW9mSG9jUDQKVDNlRHduUXZuQlpqYy9lOE4vOHFTYkFyQ0hhaFJBTkNBQVMycE9DSnh6RklqNmJEcGIxSlA2VDFWQm96T0lKWQpVcXVtREdSeVhXanNwUTRPTVU3cXZzWVRNOVZ1bStxSE9IcmRzeFBBVE1QckpoM04wUUdnRm1TNQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: web-tls\ntype: kubernetes.io/tls\n',
                 '', id='tls'),
    # kubectl create secret tls web-tls --cert=tls.crt --key=tls.key --dry-run=client -o json -n demo
    pytest.param(['create', 'secret', 'tls', 'web-tls', '--cert=tls.crt', '--key=tls.key', '--dry-run=client', '-o', 'json', '-n', 'demo'],
                 '{\n    "kind": "Secret",\n    "apiVersion": "v1",\n    "metadata": {\n        "name": "web-tls",\n        "namespace": "demo",\n        "creationTimestamp": null\n    },\n    "data": {\n        "tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJpakNDQVRHZ0F3SUJBZ0lVVUVGL1VDUnR2K3Z4cFdyeEhtYVd1RlZkQXRvd0NnWUlLb1pJemowRUF3SXcKR2pFWU1CWUdBMVVFQXd3UGQyVmlMbVY0WVcxd2JHVXVZMjl0TUNBWERUSTJNVEV6TURBME1qTXdPRm9ZRHpJeApNall4TVRBMk1EUXlNekE0V2pBYU1SZ3dGZ1lEVlFRRERBOTNaV0l1WlhoaGJYQnNaUzVqYjIwd1dUQVRCZ2NxCmhrak9QUUlCQmdncWhrak9QUU1CQndOQ0FBUzJwT0NKeHpGSWo2YkRwYjFKUDZUMVZCb3pPSUpZVXF1bURHUnkKWFdqc3BRNE9NVTdxdnNZVE05VnVtK3FIT0hyZHN4UEFUTVBySmgzTjBRR2dGbVM1bzFNd1VUQWRCZ05WSFE0RQpGZ1FVNFI1NEpZb29aL0JLRllpZ01aN2p5UUh4V1U4d0h3WURWUjBqQkJnd0ZvQVU0UjU0Sllvb1ovQktGWWlnCk1aN2p5UUh4V1U4d0R3WURWUjBUQVFIL0JBVXdBd0VCL3pBS0JnZ3Foa2pPUFFRREFnTkhBREJFQWlCRnlOcjYKdisrZmtPcUtBSFJjazlPMTF3dHJabCtLZDg4R1VvSWZ5NTJ1WXdJZ1NhVlo5bDIzKytBdTRqTmtWdXVpclFyYwozNGNEL2YyQ1RkL3VlcThhbFI0PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==",\n        "tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZ1ZuRjNnL0RPNW9mSG9jUDQKVDNlRHduUXZuQlpqYy9lOE4vOHFTYkFyQ0hhaFJBTkNBQVMycE9DSnh6RklqNmJEcGIxSlA2VDFWQm96T0lKWQpVcXVtREdSeVhXanNwUTRPTVU3cXZzWVRNOVZ1bStxSE9IcmRzeFBBVE1QckpoM04wUUdnRm1TNQotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg=="\n    },\n    "type": "kubernetes.io/tls"\n}\n',
                 '', id='tls-json'),
    # kubectl create secret tls web-tls --cert=tls.crt --key=other.key --dry-run=client
    pytest.param(['create', 'secret', 'tls', 'web-tls', '--cert=tls.crt', '--key=other.key', '--dry-run=client'],
                 '',
                 'error: tls: private key does not match public key\n', id='tls-mismatch'),
    # kubectl create secret tls web-tls --cert=nope.crt --key=tls.key --dry-run=client
    pytest.param(['create', 'secret', 'tls', 'web-tls', '--cert=nope.crt', '--key=tls.key', '--dry-run=client'],
                 '',
                 'error: Cannot read file nope.crt, open nope.crt: no such file or directory\n', id='tls-missing-file'),
    # kubectl create secret tls web-tls --cert=tls.crt --dry-run=client
    pytest.param(['create', 'secret', 'tls', 'web-tls', '--cert=tls.crt', '--dry-run=client'],
                 '',
                 'error: key and cert must be specified\n', id='tls-no-key'),
    # kubectl create secret tls web-tls --cert=garbage.crt --key=tls.key --dry-run=client
    pytest.param(['create', 'secret', 'tls', 'web-tls', '--cert=garbage.crt', '--key=tls.key', '--dry-run=client'],
                 '',
                 'error: tls: failed to find any PEM data in certificate input\n', id='tls-garbage'),
    # kubectl create secret docker-registry reg --docker-server=https://r.example.com --docker-username=bob --docker-password='p@ss"w<' --docker-email=bob@example.com --dry-run=client -o yaml
    pytest.param(['create', 'secret', 'docker-registry', 'reg', '--docker-server=https://r.example.com', '--docker-username=bob', '--docker-password=p@ss"w<', '--docker-email=bob@example.com', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\ndata:\n  .dockerconfigjson: eyJhdXRocyI6eyJodHRwczovL3IuZXhhbXBsZS5jb20iOnsidXNlcm5hbWUiOiJib2IiLCJwYXNzd29yZCI6InBAc3NcIndcdTAwM2MiLCJlbWFpbCI6ImJvYkBleGFtcGxlLmNvbSIsImF1dGgiOiJZbTlpT25CQWMzTWlkenc9In19fQ==\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: reg\ntype: kubernetes.io/dockerconfigjson\n',
                 '', id='docker'),
    # kubectl create secret docker-registry reg --docker-username=bob --docker-password=pw --dry-run=client -o jsonpath={.data.\.dockerconfigjson}
    pytest.param(['create', 'secret', 'docker-registry', 'reg', '--docker-username=bob', '--docker-password=pw', '--dry-run=client', '-o', 'jsonpath={.data..dockerconfigjson}'],
                 '',
                 '', id='docker-default-server'),
    # kubectl create secret docker-registry reg --docker-username=bob --dry-run=client
    pytest.param(['create', 'secret', 'docker-registry', 'reg', '--docker-username=bob', '--dry-run=client'],
                 '',
                 'error: either --from-file or the combination of --docker-username, --docker-password and --docker-server is required\n', id='docker-missing'),
    # kubectl create service clusterip my-cs --tcp=5678:8080 --dry-run=client -o yaml
    pytest.param(['create', 'service', 'clusterip', 'my-cs', '--tcp=5678:8080', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\nkind: Service\nmetadata:\n  creationTimestamp: null\n  labels:\n    app: my-cs\n  name: my-cs\nspec:\n  ports:\n  - name: 5678-8080\n    port: 5678\n    protocol: TCP\n    targetPort: 8080\n  selector:\n    app: my-cs\n  type: ClusterIP\nstatus:\n  loadBalancer: {}\n',
                 '', id='svc-clusterip'),
    # kubectl create service clusterip my-cs --clusterip=None --dry-run=client -o yaml
    pytest.param(['create', 'service', 'clusterip', 'my-cs', '--clusterip=None', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\nkind: Service\nmetadata:\n  creationTimestamp: null\n  labels:\n    app: my-cs\n  name: my-cs\nspec:\n  clusterIP: None\n  selector:\n    app: my-cs\n  type: ClusterIP\nstatus:\n  loadBalancer: {}\n',
                 '', id='svc-headless'),
    # kubectl create service nodeport my-ns --tcp=5678:8080 --tcp=80 --node-port=30080 --dry-run=client -o yaml
    pytest.param(['create', 'service', 'nodeport', 'my-ns', '--tcp=5678:8080', '--tcp=80', '--node-port=30080', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\nkind: Service\nmetadata:\n  creationTimestamp: null\n  labels:\n    app: my-ns\n  name: my-ns\nspec:\n  ports:\n  - name: 5678-8080\n    nodePort: 30080\n    port: 5678\n    protocol: TCP\n    targetPort: 8080\n  - name: "80"\n    nodePort: 30080\n    port: 80\n    protocol: TCP\n    targetPort: 80\n  selector:\n    app: my-ns\n  type: NodePort\nstatus:\n  loadBalancer: {}\n',
                 '', id='svc-nodeport'),
    # kubectl create service loadbalancer lb --tcp=80:http,443:https --dry-run=client -o json
    pytest.param(['create', 'service', 'loadbalancer', 'lb', '--tcp=80:http,443:https', '--dry-run=client', '-o', 'json'],
                 '{\n    "kind": "Service",\n    "apiVersion": "v1",\n    "metadata": {\n        "name": "lb",\n        "creationTimestamp": null,\n        "labels": {\n            "app": "lb"\n        }\n    },\n    "spec": {\n        "ports": [\n            {\n                "name": "80-http",\n                "protocol": "TCP",\n                "port": 80,\n                "targetPort": "http"\n            },\n            {\n                "name": "443-https",\n                "protocol": "TCP",\n                "port": 443,\n                "targetPort": "https"\n            }\n        ],\n        "selector": {\n            "app": "lb"\n        },\n        "type": "LoadBalancer"\n    },\n    "status": {\n        "loadBalancer": {}\n    }\n}\n',
                 '', id='svc-lb-json'),
    # kubectl create service externalname ext --external-name=bar.com --dry-run=client -o yaml
    pytest.param(['create', 'service', 'externalname', 'ext', '--external-name=bar.com', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\nkind: Service\nmetadata:\n  creationTimestamp: null\n  labels:\n    app: ext\n  name: ext\nspec:\n  externalName: bar.com\n  selector:\n    app: ext\n  type: ExternalName\nstatus:\n  loadBalancer: {}\n',
                 '', id='svc-externalname'),
    # kubectl create service clusterip my-cs --dry-run=client
    pytest.param(['create', 'service', 'clusterip', 'my-cs', '--dry-run=client'],
                 '',
                 'error: at least one tcp port specifier must be provided\n', id='svc-no-port'),
    # kubectl create service clusterip x --tcp=abc --dry-run=client
    pytest.param(['create', 'service', 'clusterip', 'x', '--tcp=abc', '--dry-run=client'],
                 '',
                 'error: strconv.ParseUint: parsing "abc": invalid syntax\n', id='svc-bad-port'),
    # kubectl create service clusterip x --tcp=80:70000 --dry-run=client
    pytest.param(['create', 'service', 'clusterip', 'x', '--tcp=80:70000', '--dry-run=client'],
                 '',
                 'error: must be between 1 and 65535, inclusive\n', id='svc-bad-target'),
    # kubectl create service clusterip x --tcp=80:Bad_Name --dry-run=client
    pytest.param(['create', 'service', 'clusterip', 'x', '--tcp=80:Bad_Name', '--dry-run=client'],
                 '',
                 'error: must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)\n', id='svc-bad-port-name'),
    # kubectl create deployment web --image=nginx:1.25 --image=busybox --port=80 --replicas=2 --dry-run=client -o json
    pytest.param(['create', 'deployment', 'web', '--image=nginx:1.25', '--image=busybox', '--port=80', '--replicas=2', '--dry-run=client', '-o', 'json'],
                 '{\n    "kind": "Deployment",\n    "apiVersion": "apps/v1",\n    "metadata": {\n        "name": "web",\n        "creationTimestamp": null,\n        "labels": {\n            "app": "web"\n        }\n    },\n    "spec": {\n        "replicas": 2,\n        "selector": {\n            "matchLabels": {\n                "app": "web"\n            }\n        },\n        "template": {\n            "metadata": {\n                "creationTimestamp": null,\n                "labels": {\n                    "app": "web"\n                }\n            },\n            "spec": {\n                "containers": [\n                    {\n                        "name": "nginx",\n                        "image": "nginx:1.25",\n                        "ports": [\n                            {\n                                "containerPort": 80\n                            }\n                        ],\n                        "resources": {}\n                    },\n                    {\n                        "name": "busybox",\n                        "image": "busybox",\n                        "resources": {}\n                    }\n                ]\n            }\n        },\n        "strategy": {}\n    },\n    "status": {}\n}\n',
                 '', id='deploy-json'),
    # kubectl create deployment web --image=nginx:1.25 --port=80 --dry-run=client -o yaml -- sleep 10
    pytest.param(['create', 'deployment', 'web', '--image=nginx:1.25', '--port=80', '--dry-run=client', '-o', 'yaml', '--', 'sleep', '10'],
                 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  creationTimestamp: null\n  labels:\n    app: web\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  strategy: {}\n  template:\n    metadata:\n      creationTimestamp: null\n      labels:\n        app: web\n    spec:\n      containers:\n      - command:\n        - sleep\n        - "10"\n        image: nginx:1.25\n        name: nginx\n        ports:\n        - containerPort: 80\n        resources: {}\nstatus: {}\n',
                 '', id='deploy-command'),
    # kubectl create deployment web --image=nginx --image=busybox --dry-run=client -- sleep 10
    pytest.param(['create', 'deployment', 'web', '--image=nginx', '--image=busybox', '--dry-run=client', '--', 'sleep', '10'],
                 '',
                 'error: cannot specify multiple --image options and command\n', id='deploy-two-images-command'),
    # kubectl create namespace dev --dry-run=client -o yaml
    pytest.param(['create', 'namespace', 'dev', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\nkind: Namespace\nmetadata:\n  creationTimestamp: null\n  name: dev\nspec: {}\nstatus: {}\n',
                 '', id='namespace'),
    # kubectl create configmap c --from-literal=a=1 --from-literal=b=x --dry-run=client -o yaml -n foo
    pytest.param(['create', 'configmap', 'c', '--from-literal=a=1', '--from-literal=b=x', '--dry-run=client', '-o', 'yaml', '-n', 'foo'],
                 'apiVersion: v1\ndata:\n  a: "1"\n  b: x\nkind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  name: c\n  namespace: foo\n',
                 '', id='configmap'),
    # kubectl create secret generic s --from-literal=a=1 --type=foo --dry-run=client -o yaml
    pytest.param(['create', 'secret', 'generic', 's', '--from-literal=a=1', '--type=foo', '--dry-run=client', '-o', 'yaml'],
                 'apiVersion: v1\ndata:\n  a: MQ==\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: s\ntype: foo\n',
                 '', id='secret-generic'),
])
def test_dry_run_prints_what_kubectl_prints(kubemu, argv, out, err):
    assert kubemu(argv) == (1 if err else 0, out, err)


def test_restart_policy_error_is_a_usage_error(kubemu):
    # kubectl run web --image=nginx --restart=Sometimes --dry-run=client (names itself kubectl)
    assert kubemu(["run", "web", "--image=nginx", "--restart=Sometimes", "--dry-run=client"]) == (
        1, "", "error: invalid restart policy: Sometimes\n"
               "See 'kubemu run -h' for help and examples\n")


@pytest.mark.parametrize("flags, message", [
    # kubectl run x --image=busybox -t
    (["-t"], "-i/--stdin is required for containers with -t/--tty=true"),
    # kubectl run x --image=busybox --rm
    (["--rm"], "--rm should only be used for attached containers"),
    # kubectl run x --image=busybox -i --attach=false --rm
    (["-i", "--attach=false", "--rm"], "--rm should only be used for attached containers"),
    # kubectl run x --image=busybox -i --dry-run=client
    (["-i", "--dry-run=client"], "--dry-run=[server|client] can't be used with attached "
                                 "containers options (--attach, --stdin, or --tty)"),
    # kubectl run x --image=busybox --attach --dry-run=client
    (["--attach", "--dry-run=client"], "--dry-run=[server|client] can't be used with attached "
                                       "containers options (--attach, --stdin, or --tty)"),
    # kubectl run x --image=busybox -i --pod-running-timeout=0s
    (["-i", "--pod-running-timeout=0s"], "--pod-running-timeout must be higher than zero"),
], ids=["tty-without-stdin", "rm-unattached", "rm-attach-false", "stdin-dry-run",
        "attach-dry-run", "zero-timeout"])
def test_run_attach_flag_errors_are_kubectls_usage_errors(kubemu, flags, message):
    """Checked before anything is sent (kubectl v1.32.4 printed each message,
    with its own name in the second line)."""
    assert kubemu(["run", "x", "--image=busybox", *flags]) == (
        1, "", f"error: {message}\nSee 'kubemu run -h' for help and examples\n")


def test_run_i_t_puts_stdin_and_a_terminal_in_the_pod(kubemu):
    """run-pod/v1: -i is stdin (stdinOnce unless --leave-stdin-open), -t is tty;
    --attach=false makes a dry run possible. (kubectl needs a server to print
    these: the fields and their order are the generator's, from its source.)"""
    code, out, err = kubemu(["run", "x", "--image=busybox", "-i", "-t", "--attach=false",
                             "--dry-run=client", "-o", "yaml"])
    assert (code, err) == (0, "")
    assert "    resources: {}\n    stdin: true\n    stdinOnce: true\n    tty: true\n" in out
    code, out, err = kubemu(["run", "x", "--image=busybox", "-i", "--attach=false",
                             "--leave-stdin-open", "--dry-run=client", "-o", "yaml"])
    assert (code, err) == (0, "")
    assert "    stdin: true\n" in out and "stdinOnce" not in out and "tty" not in out
