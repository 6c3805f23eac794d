"""`kubemu expose (deployment|pod|replicaset|service|replicationcontroller) NAME` and
`expose -f FILE`: a Service for an object, built as kubectl expose builds it.

- the selector: --selector, else the object's (a pod's labels, a Service's or
  ReplicationController's spec.selector, a Deployment's or ReplicaSet's
  matchLabels; matchExpressions cannot be written as a Service selector and are
  refused with kubectl's message);
- the ports: --port, else the object's (its containers' ports, a Service's
  ports); several ports are named port-1, port-2, ...; each port's protocol is
  --protocol, else the object's protocol for that port number, else TCP (a port
  with several protocols gives one service port per protocol); the targetPort
  is --target-port for every port, else the port itself;
- the name: --name, else the object's (cut to 63 characters); the labels:
  --labels, else the object's;
- --type, --external-ip, --load-balancer-ip (LoadBalancer only),
  --session-affinity, --cluster-ip (`None`: headless, which needs no port).
Prints `service/NAME exposed`, or the object with -o; --dry-run=client only
prints it, --dry-run=server has the apiserver check it and store nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

Obj = dict[str, Any]

DNS1035_LABEL_LENGTH_MAX = 63
# The kinds kubectl's CanBeExposed allows.
EXPOSABLE = ("Pod", "Service", "ReplicationController", "Deployment", "ReplicaSet")
SESSION_AFFINITIES = ("None", "ClientIP")


@dataclasses.dataclass
class ExposeFlags:
    port: str = ""
    target_port: str = ""
    protocol: str = ""
    type: str = ""
    name: str = ""
    selector: str = ""
    labels: str = ""
    external_ip: str = ""
    load_balancer_ip: str = ""
    session_affinity: str = ""
    cluster_ip: str = ""


def _go_requirements(expressions: list[Obj]) -> str:
    """A []LabelSelectorRequirement as Go's %+v prints it."""
    items = [f"{{Key:{e.get('key', '')} Operator:{e.get('operator', '')} "
             f"Values:[{' '.join(e.get('values') or [])}]}}" for e in expressions]
    return f"[{' '.join(items)}]"


def selector_for(obj: Obj) -> dict[str, str]:
    """kubectl's MapBasedSelectorForObject."""
    kind = obj.get("kind", "")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if not labels:
            raise CliError("the pod has no labels and cannot be exposed")
        return dict(labels)
    if kind == "Service":
        if not spec.get("selector"):
            raise CliError("the service has no pod selector set")
        return dict(spec["selector"])
    if kind == "ReplicationController":
        return dict(spec.get("selector") or {})
    selector = spec.get("selector") or {}
    if selector.get("matchExpressions"):
        raise CliError(f'couldn\'t convert expressions - "{_go_requirements(selector["matchExpressions"])}" '
                       f"to map-based selector format")
    return dict(selector.get("matchLabels") or {})


def _pod_spec(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    return spec if obj.get("kind") == "Pod" else (spec.get("template") or {}).get("spec") or {}


def ports_for(obj: Obj) -> list[str]:
    """kubectl's PortsForObject: container ports, or a Service's ports, each number once."""
    if obj.get("kind") == "Service":
        numbers = [p.get("port", 0) for p in (obj.get("spec") or {}).get("ports") or []]
    else:
        numbers = [p.get("containerPort", 0) for c in _pod_spec(obj).get("containers") or []
                   for p in c.get("ports") or []]
    return list(dict.fromkeys(str(n) for n in numbers))


def protocols_for(obj: Obj) -> dict[str, list[str]]:
    """kubectl's ProtocolsForObject: port number -> its protocols, in order."""
    if obj.get("kind") == "Service":
        pairs = [(p.get("port", 0), p.get("protocol") or "TCP")
                 for p in (obj.get("spec") or {}).get("ports") or []]
    else:
        pairs = [(p.get("containerPort", 0), p.get("protocol") or "TCP")
                 for c in _pod_spec(obj).get("containers") or [] for p in c.get("ports") or []]
    out: dict[str, list[str]] = {}
    for port, protocol in pairs:
        seen = out.setdefault(str(port), [])
        if protocol not in seen:
            seen.append(protocol)
    return out


def _parse_labels(text: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in [p for p in text.split(",") if p]:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"invalid label spec: {pair}" if flag == "labels"
                           else f"invalid selector: {pair}")
        out[key] = value
    return out


def _target_port(text: str) -> int | str:
    """intstr.Parse: a number, else the name."""
    try:
        return int(text)
    except ValueError:
        return text


def build_service(obj: Obj, flags: ExposeFlags, namespace: str | None = None) -> Obj:
    """The Service kubectl expose builds for `obj` (a dict in the Go structs' field order,
    as kubectl's --dry-run=client prints it)."""
    kind = obj.get("kind", "")
    if kind not in EXPOSABLE:
        group = (obj.get("apiVersion") or "").rpartition("/")[0]
        raise CliError(f"cannot expose a {kind}{'.' + group if group else ''}")
    meta = obj.get("metadata") or {}
    name = flags.name or meta.get("name", "")[:DNS1035_LABEL_LENGTH_MAX]
    if not name:
        raise CliError("name must be specified")
    if flags.selector:
        selector = _parse_labels(flags.selector, "selector")
    else:
        try:
            selector = selector_for(obj)
        except CliError as err:
            raise CliError(f"couldn't retrieve selectors via --selector flag or introspection: "
                         f"{err}") from None
    headless = flags.cluster_ip == "None"
    port_words = [p for p in flags.port.split(",") if p] if flags.port else ports_for(obj)
    if not port_words and not headless:
        raise CliError("couldn't find port via --port flag or introspection")
    protocols = protocols_for(obj) if not flags.protocol else {}
    labels = _parse_labels(flags.labels, "labels") if flags.labels else \
        dict(meta.get("labels") or {})

    ports: list[Obj] = []
    for i, word in enumerate(port_words):
        try:
            number = int(word)
        except ValueError:
            raise CliError(f'strconv.Atoi: parsing "{word}": invalid syntax') from None
        port_name = f"port-{i + 1}" if len(port_words) > 1 else ""
        protocol = flags.protocol or "TCP"
        found = protocols.get(word, [])
        if not flags.protocol and len(found) == 1:
            protocol = found[0]
        elif not flags.protocol and len(found) > 1:
            for each in found:
                ports.append({"name": f"port-{i + 1}-{each.lower()}", "protocol": each,
                              "port": number})
            continue
        ports.append({"name": port_name, "protocol": protocol, "port": number})
    for port in ports:
        port["targetPort"] = _target_port(flags.target_port) if flags.target_port \
            else port["port"]
        if not port["name"]:
            del port["name"]

    spec: Obj = {}
    if ports:
        spec["ports"] = ports
    if selector:
        spec["selector"] = selector
    if flags.cluster_ip:
        spec["clusterIP"] = flags.cluster_ip
    if flags.type:
        spec["type"] = flags.type
    if flags.external_ip:
        spec["externalIPs"] = [flags.external_ip]
    if flags.session_affinity:
        if flags.session_affinity not in SESSION_AFFINITIES:
            raise CliError(f"unknown session affinity: {flags.session_affinity}")
        spec["sessionAffinity"] = flags.session_affinity
    if flags.type == "LoadBalancer" and flags.load_balancer_ip:
        spec["loadBalancerIP"] = flags.load_balancer_ip
    metadata: Obj = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["creationTimestamp"] = None
    if labels:
        metadata["labels"] = labels
    return {"kind": "Service", "apiVersion": "v1", "metadata": metadata, "spec": spec,
            "status": {"loadBalancer": {}}}


def _targets(words: list[str]) -> list[tuple[str, str]]:
    """(type, name) pairs from `TYPE NAME...` or `TYPE/NAME...`."""
    if not words:
        raise CliError("You must provide one or more resources by argument or filename.\n"
                       "Example resource specifications include:\n"
                       "   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n"
                       "   '<resource>'", verbatim=True)
    if "/" in words[0]:
        pairs = [word.partition("/")[::2] for word in words]
        if any(not kind or not name for kind, name in pairs):
            raise CliError("arguments in resource/name form must have a single resource "
                           "and name")
        return pairs
    if len(words) == 1:
        raise CliError("resource(s) were provided, but no name was specified")
    return [(words[0], name) for name in words[1:]]


async def run_expose(args: argparse.Namespace) -> int:
    from kubemu.cli import manifests
    from kubemu.cli.apply import create_generated

    flags = ExposeFlags(port=args.port, target_port=args.target_port, protocol=args.protocol,
                        type=args.type, name=args.name, selector=args.selector_flag,
                        labels=args.labels, external_ip=args.external_ip,
                        load_balancer_ip=args.load_balancer_ip,
                        session_affinity=args.session_affinity, cluster_ip=args.cluster_ip)
    namespace = common.namespace_of(args)
    async with common.client_for(args) as client:
        sources: list[Obj] = []
        if args.filename:
            for doc in manifests.load_documents(args.filename):
                if isinstance(doc.data, dict):
                    sources.append(doc.data)
        else:
            for type_name, name in _targets(args.words):
                kind = common.resolve_kind(type_name)
                sources.append(common.to_json(await client.get(kind.resource, name, namespace),
                                              kind))
        for source in sources:
            await create_generated(args, build_service(source, flags, args.namespace),
                                   verb="exposed", client=client)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from kubemu.cli.apply import add_dry_run_arg, add_object_output_arg

    p = subparsers.add_parser(
        "expose", help="expose a pod, deployment, replica set or service as a new Service",
        description="Expose a resource as a new Kubernetes Service (as kubectl expose).")
    p.add_argument("words", nargs="*", metavar="(-f FILENAME | TYPE NAME)")
    p.add_argument("-f", "--filename", action="append", default=[])
    common.add_namespace_arg(p)
    p.add_argument("--port", default="", help="the port the service serves on (default: "
                                              "the object's)")
    p.add_argument("--target-port", default="", help="the port (number or name) on the pods")
    p.add_argument("--protocol", default="", help="TCP, UDP or SCTP (default: the object's)")
    p.add_argument("--type", default="",
                   help="ClusterIP, NodePort, LoadBalancer or ExternalName")
    p.add_argument("--name", default="", help="the Service's name (default: the object's)")
    p.add_argument("-l", "--labels", default="", help="labels of the Service")
    p.add_argument("--selector", dest="selector_flag", default="",
                   help="the pods' selector (default: the object's)")
    p.add_argument("--external-ip", default="")
    p.add_argument("--load-balancer-ip", default="")
    p.add_argument("--session-affinity", default="", help="None or ClientIP")
    p.add_argument("--cluster-ip", default="", help="the ClusterIP ('None': headless)")
    add_object_output_arg(p)
    add_dry_run_arg(p)
    p.set_defaults(func=run_expose)
