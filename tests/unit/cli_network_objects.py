"""Objects that kubectl 1.32.5 was pointed at (a fake API server serving exactly
these, on 2026-11-30 at 13:24:27 UTC) to capture the Service, Endpoints,
EndpointSlice, Ingress and IngressClass descriptions in kubectl_describe/."""

from __future__ import annotations

T = "2026-11-30T09:00:00Z"


def meta(name, ns="default", **kw):
    m = {
        "name": name,
        "creationTimestamp": T,
        "uid": "uid-" + name,
        "resourceVersion": "5",
    }
    if ns:
        m["namespace"] = ns
    m.update(kw)
    return m


def slice_(name, svc, ports, eps, at="IPv4"):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta(
            name,
            labels={
                "kubernetes.io/service-name": svc,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        ),
        "addressType": at,
        "ports": ports,
        "endpoints": eps,
    }


def ep(ip, ready=True, pod=None, node="node-1", **cond):
    e = {
        "addresses": [ip],
        "conditions": {
            "ready": ready,
            "serving": cond.get("serving", ready),
            "terminating": cond.get("terminating", False),
        },
        "nodeName": node,
    }
    if pod:
        e["targetRef"] = {
            "kind": "Pod",
            "name": pod,
            "namespace": "default",
            "uid": "uid-" + pod,
        }
    return e


NETWORK = [
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("kuard", labels={"app": "kuard"}, annotations={"note": "x"}),
        "spec": {
            "selector": {"app": "kuard"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}
            ],
            "clusterIP": "127.2.0.20",
            "clusterIPs": ["127.2.0.20"],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("np"),
        "spec": {
            "selector": {"app": "np", "tier": "x"},
            "ports": [
                {
                    "port": 80,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "nodePort": 30080,
                },
                {
                    "name": "dns",
                    "port": 53,
                    "targetPort": 53,
                    "protocol": "UDP",
                    "nodePort": 30053,
                },
            ],
            "clusterIP": "127.2.0.21",
            "clusterIPs": ["127.2.0.21"],
            "type": "NodePort",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 0,
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "externalIPs": ["127.9.9.9"],
        },
        "status": {"loadBalancer": {}},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("lb"),
        "spec": {
            "selector": {"app": "lb"},
            "ports": [
                {
                    "name": "web",
                    "port": 80,
                    "targetPort": 8080,
                    "protocol": "TCP",
                    "nodePort": 31000,
                }
            ],
            "clusterIP": "127.2.0.22",
            "clusterIPs": ["127.2.0.22"],
            "type": "LoadBalancer",
            "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": True,
            "internalTrafficPolicy": "Cluster",
            "loadBalancerIP": "127.1.2.9",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "127.1.2.1", "ipMode": "VIP"}]}},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("ext"),
        "spec": {
            "type": "ExternalName",
            "externalName": "example.com",
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {}},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("headless"),
        "spec": {
            "selector": {"app": "h"},
            "clusterIP": "None",
            "clusterIPs": ["None"],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    },
    slice_(
        "kuard-abc12",
        "kuard",
        [{"name": "http", "port": 8080, "protocol": "TCP"}],
        [
            ep("127.2.1.5", pod="kuard-1"),
            ep("127.2.1.6", pod="kuard-2"),
            ep("127.2.1.7", False, pod="kuard-3", serving=True, terminating=True),
            ep("127.2.2.8", pod="kuard-4", node="node-2"),
            ep("127.2.2.9", pod="kuard-5", node="node-2"),
        ],
    ),
    slice_(
        "np-xyz",
        "np",
        [
            {"name": "", "port": 8081, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
        [ep("127.2.1.10", pod="np-1")],
    ),
    slice_(
        "headless-q",
        "headless",
        [],
        [ep("127.2.1.11", pod="h-1"), ep("127.2.1.12", False, pod="h-2")],
    ),
    {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": meta("kuard", labels={"app": "kuard"}),
        "subsets": [
            {
                "addresses": [
                    {
                        "ip": "127.2.1.5",
                        "nodeName": "node-1",
                        "targetRef": {
                            "kind": "Pod",
                            "name": "kuard-1",
                            "namespace": "default",
                        },
                    },
                    {
                        "ip": "127.2.1.6",
                        "nodeName": "node-1",
                        "targetRef": {
                            "kind": "Pod",
                            "name": "kuard-2",
                            "namespace": "default",
                        },
                    },
                ],
                "notReadyAddresses": [
                    {
                        "ip": "127.2.1.7",
                        "nodeName": "node-1",
                        "targetRef": {
                            "kind": "Pod",
                            "name": "kuard-3",
                            "namespace": "default",
                        },
                    }
                ],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        ],
    },
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("empty"), "subsets": []},
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": meta(
            "nginx",
            None,
            annotations={"ingressclass.kubernetes.io/is-default-class": "true"},
            labels={"app.kubernetes.io/component": "controller"},
        ),
        "spec": {
            "controller": "k8s.io/ingress-nginx",
            "parameters": {
                "apiGroup": "k8s.example.com",
                "kind": "IngressParameters",
                "name": "external-lb",
                "scope": "Namespace",
                "namespace": "default",
            },
        },
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": meta("plain", None),
        "spec": {"controller": "example.com/ingress"},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(
            "web", annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"}
        ),
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "kuard", "port": {"number": 80}}},
            "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
            "rules": [
                {
                    "host": "a.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": "kuard",
                                        "port": {"name": "http"},
                                    }
                                },
                            },
                            {
                                "path": "/np",
                                "pathType": "Exact",
                                "backend": {
                                    "service": {"name": "np", "port": {"number": 53}}
                                },
                            },
                        ]
                    },
                },
                {
                    "host": "b.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": "missing",
                                        "port": {"number": 80},
                                    }
                                },
                            }
                        ]
                    },
                },
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/r",
                                "pathType": "ImplementationSpecific",
                                "backend": {
                                    "resource": {
                                        "apiGroup": "k8s.example.com",
                                        "kind": "StorageBucket",
                                        "name": "static",
                                    }
                                },
                            }
                        ]
                    }
                },
            ],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "127.1.2.1"}]}},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta("bare"),
        "spec": {
            "rules": [
                {
                    "host": "c.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": "kuard", "port": {"number": 80}}
                                },
                            }
                        ]
                    },
                }
            ]
        },
        "status": {"loadBalancer": {}},
    },
    {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta("lb.1"),
        "involvedObject": {
            "kind": "Service",
            "name": "lb",
            "namespace": "default",
            "uid": "uid-lb",
        },
        "reason": "IPAllocated",
        "message": 'Assigned IP ["127.1.2.1"]',
        "source": {"component": "service-lb-controller"},
        "firstTimestamp": "2026-11-30T09:00:01Z",
        "lastTimestamp": "2026-11-30T09:00:01Z",
        "count": 1,
        "type": "Normal",
    },
]
