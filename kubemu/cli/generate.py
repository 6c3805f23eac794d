"""kubectl's object generators: what `create <kind>` and `run` build from flags.

Each function returns the object as kubectl builds it, as a dict in the
field order of the Kubernetes Go structs (kubectl's `-o json` of a generated
object prints that order; `-o yaml` sorts), with what kubectl's structs always
print: `creationTimestamp: null`, `resources: {}`, `status: {}`, ...
`prune_nulls` turns it into what the server is sent. Flag errors are worded
as kubectl words them (CliError). Pure functions apart from reading the files
named by flags (certificates, keys, --from-file).
"""
from __future__ import annotations

import base64
import re
from typing import Any

from kubemu.cli.common import CliError

Obj = dict[str, Any]

DEFAULT_DOCKER_SERVER = "https://index.docker.io/v1/"
DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
SERVICE_TYPES = {"clusterip": "ClusterIP", "nodeport": "NodePort",
                 "loadbalancer": "LoadBalancer", "externalname": "ExternalName"}
# A certificate or key file bigger than this is not one.
PEM_FILE_BYTES_MAX = 1024 * 1024


def metadata(name: str, namespace: str | None, *, labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None) -> Obj:
    """ObjectMeta's fields in Go order; the namespace only when -n was given (kubectl's
    EnforceNamespace)."""
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = None
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def prune_nulls(value: Any) -> Any:
    """The object without null fields (what the apiserver is sent)."""
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(v) for v in value]
    return value


def sorted_keys(value: Any) -> Any:
    """A decoded object with every map's keys in sorted order (as Go maps print)."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


# ---------------------------------------------------------------- namespace, configmap, secret

def namespace(name: str) -> Obj:
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": metadata(name, None),
            "spec": {}, "status": {}}


def configmap(name: str, ns: str | None, data: dict[str, str]) -> Obj:
    out: Obj = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": metadata(name, ns)}
    if data:
        out["data"] = dict(data)
    return out


def secret(name: str, ns: str | None, secret_type: str, data: dict[str, bytes]) -> Obj:
    out: Obj = {"kind": "Secret", "apiVersion": "v1", "metadata": metadata(name, ns),
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    if secret_type:  # empty: the server's default, Opaque
        out["type"] = secret_type
    return out


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(PEM_FILE_BYTES_MAX)
    except OSError as exc:
        reason = "no such file or directory" if isinstance(exc, FileNotFoundError) else \
            (exc.strerror or str(exc)).lower()
        raise CliError(f"Cannot read file {path}, open {path}: {reason}") from None


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def check_key_pair(cert_path: str, key_path: str, cert: bytes, key: bytes) -> None:
    """Go's tls.X509KeyPair checks, with its messages."""
    cert_blocks = _PEM_BLOCK.findall(cert)
    if not cert_blocks:
        raise CliError("tls: failed to find any PEM data in certificate input")
    if b"CERTIFICATE" not in cert_blocks:
        kinds = " ".join(f'"{b.decode()}"' for b in cert_blocks)
        raise CliError('tls: failed to find "CERTIFICATE" PEM block in certificate input after '
                       f"skipping PEM blocks of the following types: [{kinds}]")
    key_blocks = _PEM_BLOCK.findall(key)
    if not key_blocks:
        raise CliError("tls: failed to find any PEM data in key input")
    if not any(b == b"PRIVATE KEY" or b.endswith(b" PRIVATE KEY") for b in key_blocks):
        raise CliError("tls: found a certificate rather than a key in the PEM for the private "
                       "key" if b"CERTIFICATE" in key_blocks else
                       "tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key "
                       "input after skipping PEM blocks of the following types: "
                       f"[{' '.join(repr(b.decode()) for b in key_blocks)}]")
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise CliError("tls: private key does not match public key") from None
        if "PEM" in str(exc) and "cert" in str(exc).lower():
            raise CliError("tls: failed to parse certificate") from None
        raise CliError("tls: failed to parse private key") from None


def secret_tls(name: str, ns: str | None, cert_path: str, key_path: str) -> Obj:
    if not cert_path or not key_path:
        raise CliError("key and cert must be specified")
    cert, key = _read(cert_path), _read(key_path)
    check_key_pair(cert_path, key_path, cert, key)
    return secret(name, ns, "kubernetes.io/tls", {"tls.crt": cert, "tls.key": key})


def docker_config_json(username: str, password: str, email: str, server: str) -> bytes:
    """kubectl's handleDockerCfgJSONContent: encoding/json of DockerConfigJSON."""
    from kubemu.cli import gofmt

    entry: Obj = {}
    for key, value in (("username", username), ("password", password), ("email", email),
                       ("auth", base64.b64encode(f"{username}:{password}".encode()).decode())):
        if value:
            entry[key] = value
    return gofmt.marshal({"auths": {server: entry}}, sort_keys=False).encode()


def secret_docker_registry(name: str, ns: str | None, *, username: str, password: str,
                           email: str, server: str, from_files: list[str]) -> Obj:
    if not from_files and not (username and password and server):
        raise CliError("either --from-file or the combination of --docker-username, "
                       "--docker-password and --docker-server is required")
    if from_files:
        sources = [f if "=" in f else f"{DOCKER_CONFIG_JSON_KEY}={f}" for f in from_files]
        data = files_data(sources)
    else:
        data = {DOCKER_CONFIG_JSON_KEY: docker_config_json(username, password, email, server)}
    return secret(name, ns, "kubernetes.io/dockerconfigjson", data)


def files_data(sources: list[str]) -> dict[str, bytes]:
    """--from-file [KEY=]PATH values (a directory gives its files), in order."""
    import pathlib

    data: dict[str, bytes] = {}
    for spec in sources:
        key, sep, path = spec.partition("=")
        if not sep:
            key, path = pathlib.Path(spec).name, spec
        p = pathlib.Path(path)
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        for f in files:
            k = f.name if p.is_dir() else key
            if k in data:
                raise CliError(f"cannot add key {k}, another key by that name already exists "
                               f"in data: {sorted(data)}")
            data[k] = _read(str(f))
    return data


# ---------------------------------------------------------------- service

_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def _parse_port(text: str) -> int:
    """utilsnet.ParsePort(text, allowZero=true)."""
    if not re.fullmatch(r"[0-9]+", text):
        raise CliError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    port = int(text)
    if port > 0xFFFF:
        raise CliError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return port


def _is_valid_port_name(name: str) -> list[str]:
    """validation.IsValidPortName's messages."""
    errs = []
    if len(name) < 1 or len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def service_ports(tcp: list[str], node_port: int) -> list[Obj]:
    ports = []
    for spec in tcp:
        parts = spec.split(":")
        port = _parse_port(parts[0])
        target: int | str = port
        if len(parts) > 1:
            if re.fullmatch(r"[+-]?[0-9]+", parts[1]):
                number = int(parts[1])
                if not 1 <= number <= 65535:
                    raise CliError("must be between 1 and 65535, inclusive")
                target = number
            else:
                errs = _is_valid_port_name(parts[1])
                if errs:
                    raise CliError(",".join(errs))
                target = parts[1]
        entry: Obj = {"name": spec.replace(":", "-"), "protocol": "TCP", "port": port,
                      "targetPort": target}
        if node_port:
            entry["nodePort"] = node_port
        ports.append(entry)
    return ports


def _dns1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and re.fullmatch(
        r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name) is not None


def service(kind: str, name: str, ns: str | None, *, tcp: list[str], cluster_ip: str = "",
            node_port: int = 0, external_name: str = "") -> Obj:
    """kubectl create service clusterip|nodeport|loadbalancer|externalname."""
    svc_type = SERVICE_TYPES[kind]
    if cluster_ip == "None" and svc_type != "ClusterIP":
        raise CliError("ClusterIP=None can only be used with ClusterIP service type")
    if cluster_ip != "None" and not tcp and svc_type != "ExternalName":
        raise CliError("at least one tcp port specifier must be provided")
    if svc_type == "ExternalName" and not _dns1123_subdomain(external_name):
        raise CliError(f"invalid service external name {external_name}")
    spec: Obj = {}
    ports = service_ports(tcp, node_port)
    if ports:
        spec["ports"] = ports
    spec["selector"] = {"app": name}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    spec["type"] = svc_type
    if external_name:
        spec["externalName"] = external_name
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": metadata(name, ns, labels={"app": name}), "spec": spec,
            "status": {"loadBalancer": {}}}


# ---------------------------------------------------------------- deployment

def container_name_for(image: str) -> str:
    """kubectl create deployment's container name: the image's last path segment without
    tag or digest (`_` and `.` would get a random suffix there; here a fixed one)."""
    name = image.split("/")[-1]
    name = name.split(":")[0].split("@")[0]
    if "_" in name or "." in name:
        name = name.replace("_", "-").replace(".", "-")
    return name


def deployment(name: str, ns: str | None, *, images: list[str], replicas: int, port: int,
               command: list[str]) -> Obj:
    if not images:
        raise CliError('required flag(s) "image" not set')
    if len(images) > 1 and command:
        raise CliError("cannot specify multiple --image options and command")
    containers: list[Obj] = []
    for image in images:
        c: Obj = {"name": container_name_for(image), "image": image}
        if command:
            c["command"] = list(command)
        containers.append(c)
    if port >= 0:  # kubectl gives the port to the first container only
        containers[0]["ports"] = [{"containerPort": port}]
    for c in containers:
        c["resources"] = {}
    labels = {"app": name}
    return {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": metadata(name, ns, labels=labels),
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"creationTimestamp": None,
                                               "labels": dict(labels)},
                                  "spec": {"containers": containers}},
                     "strategy": {}},
            "status": {}}


# ---------------------------------------------------------------- run

# distribution/reference's ReferenceRegexp: [domain/]path[:tag][@digest]
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::([\w][\w.-]{{0,127}}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def parse_labels(spec: str) -> dict[str, str]:
    """kubectl's generate.ParseLabels: `k=v,k2=v2`."""
    labels: dict[str, str] = {}
    for part in spec.split(","):
        pieces = part.split("=")
        if len(pieces) != 2:
            raise CliError(f"unexpected label spec: {part}")
        if not pieces[0]:
            raise CliError("unexpected empty label key")
        labels[pieces[0]] = pieces[1]
    return labels


def parse_envs(envs: list[str]) -> list[Obj]:
    out = []
    for env in envs:
        name, sep, value = env.partition("=")
        if not sep or not name or not _ENV_NAME.match(name):
            raise CliError(f"invalid env: {env}")
        out.append({"name": name, "value": value})
    return out


def parse_annotations(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"invalid annotation format: {pair}")
        out[key] = value
    return out


def run_pod(name: str, ns: str | None, *, image: str, restart: str = "Always",
            env: list[str] = (), port: str = "", labels: str = "", command: bool = False,
            args: list[str] = (), annotations: list[str] = (), image_pull_policy: str = "",
            privileged: bool = False, stdin: bool = False, tty: bool = False,
            leave_stdin_open: bool = False) -> Obj:
    """kubectl run's pod (generator run-pod/v1, BasicPod); `stdin` (-i) keeps the
    container's stdin open, closed after the first attach unless `leave_stdin_open`
    (stdinOnce); `tty` (-t) gives it a terminal."""
    if not image:
        raise CliError('required flag(s) "image" not set')
    if not _REFERENCE.match(image):
        raise CliError(f'Invalid image name "{image}": invalid reference format')
    if restart not in RESTART_POLICIES:
        raise CliError(f"invalid restart policy: {restart}\nSee 'kubemu run -h' for help and "
                       "examples", verbatim=True)
    if image_pull_policy and image_pull_policy not in PULL_POLICIES:
        raise CliError(f"invalid image pull policy: {image_pull_policy}")
    pod_labels = parse_labels(labels) if labels else {"run": name}
    container: Obj = {"name": name, "image": image}
    if args:
        container["command" if command else "args"] = list(args)
    if port:
        if not re.fullmatch(r"[+-]?[0-9]+", port):
            raise CliError(f'strconv.Atoi: parsing "{port}": invalid syntax')
        container["ports"] = [{"containerPort": int(port)}]
    if env:
        container["env"] = parse_envs(list(env))
    container["resources"] = {}
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    if privileged:
        container["securityContext"] = {"privileged": True}
    if stdin:
        container["stdin"] = True
        if not leave_stdin_open:
            container["stdinOnce"] = True
    if tty:
        container["tty"] = True
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": metadata(name, ns, labels=pod_labels,
                                 annotations=parse_annotations(list(annotations))),
            "spec": {"containers": [container], "restartPolicy": restart,
                     "dnsPolicy": "ClusterFirst"},
            "status": {}}


# ---------------------------------------------------------------- jobs

CRONJOB_INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def _job_pod_template(name: str, image: str, command: list[str], restart: str) -> Obj:
    container: Obj = {"name": name, "image": image}
    if command:
        container["command"] = list(command)
    container["resources"] = {}
    return {"metadata": {"creationTimestamp": None},
            "spec": {"containers": [container], "restartPolicy": restart}}


def job(name: str, ns: str | None, *, image: str, command: list[str]) -> Obj:
    """kubectl create job NAME --image=I [-- COMMAND...] (restartPolicy Never)."""
    return {"kind": "Job", "apiVersion": "batch/v1", "metadata": metadata(name, ns),
            "spec": {"template": _job_pod_template(name, image, command, "Never")},
            "status": {}}


def job_from_cronjob(name: str, ns: str | None, cronjob: Obj) -> Obj:
    """kubectl create job NAME --from=cronjob/CJ: the CronJob's job template, annotated
    `cronjob.kubernetes.io/instantiate: manual` and controlled by the CronJob."""
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    annotations = {CRONJOB_INSTANTIATE_ANNOTATION: "manual",
                   **(template_meta.get("annotations") or {})}
    meta = metadata(name, ns, labels=template_meta.get("labels"), annotations=annotations)
    cj_meta = cronjob.get("metadata") or {}
    meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob",
                                "name": cj_meta.get("name", ""), "uid": cj_meta.get("uid", ""),
                                "controller": True}]
    return {"kind": "Job", "apiVersion": "batch/v1", "metadata": meta,
            "spec": template.get("spec") or {}, "status": {}}


def cronjob(name: str, ns: str | None, *, image: str, schedule: str, restart: str,
            command: list[str]) -> Obj:
    """kubectl create cronjob NAME --image=I --schedule=S [--restart=R] [-- COMMAND...]."""
    return {"kind": "CronJob", "apiVersion": "batch/v1", "metadata": metadata(name, ns),
            "spec": {"schedule": schedule,
                     "jobTemplate": {"metadata": {"name": name, "creationTimestamp": None},
                                     "spec": {"template": _job_pod_template(
                                         name, image, command, restart or "OnFailure")}}},
            "status": {}}


# ---------------------------------------------------------------- ingress

# kubectl create ingress --rule host/path=svcname:svcport[,tls[=secret]]
_INGRESS_RULE = re.compile(r"^(?P<host>[\w*.-]*)(?P<path>/[^=]*)=(?P<service>[\w.-]+):"
                           r"(?P<port>[\w-]+)(?P<tls>,tls.*)?$")
_INGRESS_BACKEND = re.compile(r"^(?P<service>[\w.-]+):(?P<port>[\w-]+)$")
RULE_FORMAT = "host/path=svcname:svcport[,tls[=secret]]"


def _ingress_backend(service: str, port: str) -> Obj:
    return {"service": {"name": service,
                        "port": {"number": int(port)} if port.isdigit() else {"name": port}}}


def ingress(name: str, ns: str | None, *, rules: list[str], default_backend: str = "",
            class_name: str = "", annotations: list[str] | None = None) -> Obj:
    """kubectl create ingress: rules merged per host in the order given; a path
    ending in `*` is a Prefix path, any other Exact; `,tls[=secret]` puts the
    host in the TLS entry of that secret (a host once)."""
    parsed = []
    for rule in rules:
        match = _INGRESS_RULE.match(rule)
        if not match:
            raise CliError(f"rule {rule} is invalid and should be in format {RULE_FORMAT}")
        parsed.append(match)
    backend = None
    if default_backend:
        match = _INGRESS_BACKEND.match(default_backend)
        if not match:
            raise CliError("default-backend should be in format servicename:serviceport")
        backend = _ingress_backend(match["service"], match["port"])
    if not parsed and backend is None:
        raise CliError("not enough information provided: every ingress has to either specify "
                       "a default-backend (which catches all traffic) or a list of rules "
                       "(which catch specific paths)")
    notes: dict[str, str] = {}
    for pair in annotations or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"annotation {pair} is invalid and should be in format key=[value]")
        notes[key] = value
    by_host: dict[str, list[Obj]] = {}
    tls: dict[str, list[str]] = {}     # secret ("" = the controller's certificate) -> hosts
    tls_hosts: set[str] = set()
    for match in parsed:
        path = match["path"]
        by_host.setdefault(match["host"], []).append({
            "path": path.removesuffix("*"),
            "pathType": "Prefix" if path.endswith("*") else "Exact",
            "backend": _ingress_backend(match["service"], match["port"])})
        secret = (match["tls"] or "").partition("tls=")[2]
        if match["tls"] and (match["host"] or secret):   # no host, no secret: nothing
            hosts = tls.setdefault(secret, [])
            if match["host"] and match["host"] not in tls_hosts:
                hosts.append(match["host"])
                tls_hosts.add(match["host"])
    spec: Obj = {}
    if class_name:
        spec["ingressClassName"] = class_name
    if backend is not None:
        spec["defaultBackend"] = backend
    if tls:
        spec["tls"] = [{**({"hosts": hosts} if hosts else {}),
                        **({"secretName": secret} if secret else {})}
                       for secret, hosts in tls.items()]
    if by_host:
        spec["rules"] = [{**({"host": host} if host else {}), "http": {"paths": paths}}
                         for host, paths in by_host.items()]
    meta = metadata(name, ns)
    if notes:
        meta["annotations"] = notes
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": spec, "status": {"loadBalancer": {}}}


# ---------------------------------------------------------------- resource quota

QUANTITY_FORMAT_ERROR = ("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def resource_list(spec: str) -> Obj | None:
    """kubectl's populateResourceListV1: `name=quantity,...`, quantities in
    their canonical form; None for an empty spec."""
    from kubemu.api import quantity

    if not spec:
        return None
    out: Obj = {}
    for statement in spec.split(","):
        parts = statement.split("=")
        if len(parts) != 2:
            raise CliError(f"Invalid argument syntax {statement}, expected <resource>=<value>")
        try:
            out[parts[0]] = str(quantity.parse(parts[1]))
        except ValueError:
            raise CliError(QUANTITY_FORMAT_ERROR) from None
    return out


def resource_quota(name: str, ns: str | None, *, hard: str, scopes: str) -> Obj:
    """kubectl create quota: scopes are not checked here (the apiserver does)."""
    spec: Obj = {}
    hard_list = resource_list(hard)
    if hard_list is not None:
        spec["hard"] = hard_list
    if scopes:
        parsed = scopes.split(",")
        if "" in parsed:
            raise CliError('invalid resource quota scope ""')
        spec["scopes"] = parsed
    return {"kind": "ResourceQuota", "apiVersion": "v1", "metadata": metadata(name, ns),
            "spec": spec, "status": {}}


# ---------------------------------------------------------------- poddisruptionbudget

_INT_OR_PERCENT = re.compile(r"^[0-9]+%?$")


def label_selector(text: str) -> Obj:
    """metav1.ParseToLabelSelector: `=`/`==` requirements become matchLabels,
    set-based ones matchExpressions; `!=`, `>` and `<` are refused as kubectl does."""
    from kubemu.api import errors, labels

    try:
        parsed = labels.parse(text)
    except errors.ApiError as exc:
        raise CliError(f'couldn\'t parse the selector string "{text}": {exc.message}') from None
    match: dict[str, str] = {}
    expressions: list[Obj] = []
    operators = {labels.IN: "In", labels.NOT_IN: "NotIn", labels.EXISTS: "Exists",
                 labels.DOES_NOT_EXIST: "DoesNotExist"}
    for req in parsed.requirements:
        if req.operator in (labels.EQUALS, labels.DOUBLE_EQUALS):
            match[req.key] = req.values[0]
        elif req.operator in (labels.GREATER_THAN, labels.LESS_THAN):
            raise CliError(f'"{req.operator}" isn\'t supported in label selectors')
        elif req.operator in operators:
            expr: Obj = {"key": req.key, "operator": operators[req.operator]}
            if req.values:
                expr["values"] = list(req.values)
            expressions.append(expr)
        else:
            raise CliError(f'"{req.operator}" is not a valid label selector operator')
    out: Obj = {}
    if match:
        out["matchLabels"] = {k: match[k] for k in sorted(match)}
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _int_or_string(text: str) -> int | str:
    """intstr.Parse: a number when it is one, else the string."""
    try:
        return int(text)
    except ValueError:
        return text


def pod_disruption_budget(name: str, ns: str | None, *, selector: str, min_available: str,
                          max_unavailable: str) -> Obj:
    """kubectl create poddisruptionbudget NAME --selector=S (--min-available=N |
    --max-unavailable=N), with kubectl's checks in its order."""
    if not selector:
        raise CliError("a selector must be specified")
    if not max_unavailable and not min_available:
        raise CliError("one of min-available or max-unavailable must be specified")
    if max_unavailable and min_available:
        raise CliError("min-available and max-unavailable cannot be both specified")
    if min_available and not _INT_OR_PERCENT.match(min_available):
        raise CliError("invalid format specified for min-available")
    if max_unavailable and not _INT_OR_PERCENT.match(max_unavailable):
        raise CliError("invalid format specified for max-unavailable")
    spec: Obj = {}
    if min_available:
        spec["minAvailable"] = _int_or_string(min_available)
    spec["selector"] = label_selector(selector)
    if max_unavailable and not min_available:
        spec["maxUnavailable"] = _int_or_string(max_unavailable)
    return {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
            "metadata": metadata(name, ns), "spec": spec,
            "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                       "expectedPods": 0}}
