"""`kubemu apply -f` and `kubemu create`.

apply, per object (after every document decoded cleanly, see manifests.py):
- absent: create it with the annotation kubectl.kubernetes.io/last-applied-
  configuration = the manifest as compact JSON -> `pod/nginx created`;
- present: send a JSON merge patch computed three ways, as kubectl does for
  kinds without a strategic-merge schema: fields in the previous last-applied
  but gone from the manifest become null; fields of the manifest that differ
  from the live object are set. Lists are replaced whole, except that a live
  list "agrees" with the manifest when each manifest item is contained in the
  live item (the server adds defaults to list items; that is no change). An
  empty patch is not sent -> `unchanged`; otherwise the server's
  resourceVersion tells `configured` from `unchanged` (it skips no-op writes).
Errors from the server for one object are printed and the others go on; the
exit status is 1 when any failed.
"""
from __future__ import annotations

import argparse
import copy
import inspect
import json
import sys
from typing import TYPE_CHECKING, Any

from kubemu.cli import common
from kubemu.cli.common import LAST_APPLIED, CliError

if TYPE_CHECKING:
    from kubemu.cli.manifests import Manifest


# ---------------------------------------------------------------- merge patches (pure)

def merge_patch(original: dict[str, Any], modified: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `original` into `modified`.

    Removed keys become null, maps are diffed recursively, any other changed
    value (lists included) is replaced whole.
    """
    patch: dict[str, Any] = {}
    for key in original:
        if key not in modified:
            patch[key] = None
    for key, value in modified.items():
        if key not in original:
            patch[key] = value
        elif isinstance(value, dict) and isinstance(original[key], dict):
            sub = merge_patch(original[key], value)
            if sub:
                patch[key] = sub
        elif not same(original[key], value):
            patch[key] = value
    return patch


def _deletions(patch: dict[str, Any]) -> dict[str, Any]:
    """Only the nulls of a merge patch (kubectl's keepOrDeleteNullInObj(..., true))."""
    out: dict[str, Any] = {}
    for key, value in patch.items():
        if value is None:
            out[key] = None
        elif isinstance(value, dict):
            sub = _deletions(value)
            if sub:
                out[key] = sub
    return out


def changes(current: dict[str, Any], modified: dict[str, Any]) -> dict[str, Any]:
    """The additions and changes that make `current` agree with `modified` (no deletions).

    A zero value in `modified` ({} [] "" 0 false) agrees with an absent one in
    `current`: the server leaves such fields out of its JSON.
    """
    out: dict[str, Any] = {}
    for key, value in modified.items():
        if value is None:
            continue  # a null in a manifest means "unset": nothing to add
        if key not in current or current[key] is None:
            if not _is_zero(value):
                out[key] = value
            continue
        have = current[key]
        if isinstance(value, dict) and isinstance(have, dict):
            sub = changes(have, value)
            if sub:
                out[key] = sub
        elif isinstance(value, list) and isinstance(have, list):
            if not _list_agrees(have, value):
                out[key] = value
        elif not same(have, value):
            out[key] = value
    return out


def _list_agrees(have: list[Any], want: list[Any]) -> bool:
    if len(have) != len(want):
        return False
    for h, w in zip(have, want):
        if isinstance(w, dict) and isinstance(h, dict):
            if changes(h, w):
                return False
        elif isinstance(w, list) and isinstance(h, list):
            if not _list_agrees(h, w):
                return False
        elif not same(h, w):
            return False
    return True


def _is_zero(value: Any) -> bool:
    if isinstance(value, bool):
        return value is False
    if isinstance(value, (int, float)):
        return value == 0
    return value in ({}, [], "")


def same(a: Any, b: Any) -> bool:
    """JSON equality (True is not 1, 1 is 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def three_way_merge_patch(original: dict[str, Any], modified: dict[str, Any],
                          current: dict[str, Any]) -> dict[str, Any]:
    """kubectl's CreateThreeWayJSONMergePatch: deletions since `original`, then changes
    from `current` to `modified` (the changes win where both touch a key)."""
    return _deep_merge(_deletions(merge_patch(original, modified)), changes(current, modified))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------- apply

DRY_RUN_SUFFIX = {"client": " (dry run)", "server": " (server dry run)"}


async def apply_manifests(client: Any, manifests: list[Manifest], *, dry_run: str = "none",
                          printer: Any = None) -> int:
    """Apply each manifest in turn, printing kubectl's one line per object; with a
    printer (-o json|yaml|...), print the resulting objects at the end instead (one
    object as it is, several as a v1 List), as kubectl apply does."""
    failed = False
    docs: list[dict[str, Any]] = []
    for manifest in manifests:
        try:
            operation, doc = await apply_one(client, manifest, dry_run=dry_run)
        except Exception as exc:  # noqa: BLE001 - print_error re-raises what is not ours
            common.print_error(exc)
            failed = True
            continue
        if printer is None:
            print(f"{manifest.label} {operation}{DRY_RUN_SUFFIX.get(dry_run, '')}", flush=True)
        else:
            docs.append(doc)
    if printer is not None and docs:
        from kubemu.cli import generate

        if len(docs) == 1:
            out = docs[0]
        else:
            # kubectl's corev1.List: its own fields in Go order, the items as maps
            out = {"kind": "List", "apiVersion": "v1", "metadata": {},
                   "items": [generate.sorted_keys(d) for d in docs]}
        sys.stdout.write(printer.render(out))
        sys.stdout.flush()
    return 1 if failed else 0


async def apply_one(client: Any, manifest: Manifest, *,
                    dry_run: str = "none") -> tuple[str, dict[str, Any]]:
    """(`created` | `configured` | `unchanged`, the object as applied).

    dry_run "client" sends nothing: a new object is the manifest as it would be
    created, an existing one is shown as it is (kubectl's behaviour); "server"
    sends the writes with the apiserver's dryRun, which stores nothing.
    """
    from kubemu.api import codec, errors
    from kubemu.cli import generate
    from kubemu.cli.manifests import last_applied_json

    applied = last_applied_json(manifest.data)
    try:
        live = await client.get(manifest.kind.resource, manifest.name, manifest.namespace)
    except errors.NotFound:
        if dry_run == "client":
            doc = copy.deepcopy(manifest.data)
            doc["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied
            return "created", generate.prune_nulls(doc)
        obj = copy.deepcopy(manifest.obj)
        obj.metadata.annotations[LAST_APPLIED] = applied
        created = await client.create(obj, dry_run=dry_run == "server")
        return "created", common.to_json(created if created is not None else obj,
                                         manifest.kind)
    if dry_run == "client":
        return "configured", common.to_json(live, manifest.kind)
    previous = live.metadata.annotations.get(LAST_APPLIED, "")
    original: dict[str, Any] = {}
    if previous:
        try:
            original = json.loads(previous)
        except ValueError:
            original = {}
        if not isinstance(original, dict):
            original = {}
    else:
        print(f"Warning: resource {manifest.kind.resource}/{manifest.name} is missing the "
              f"{LAST_APPLIED} annotation which is required by kubemu apply. kubemu apply "
              "should only be used on resources created declaratively by either kubemu create "
              "--save-config or kubemu apply. The missing annotation will be patched "
              "automatically.", file=sys.stderr)
    modified = copy.deepcopy(manifest.data)
    modified["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied
    patch = three_way_merge_patch(original, modified, codec.to_dict(live))
    if not patch:
        return "unchanged", common.to_json(live, manifest.kind)
    result = await client.patch(manifest.kind.resource, manifest.name, manifest.namespace,
                                patch=patch, dry_run=dry_run == "server")
    if dry_run == "none" and result.metadata.resource_version == live.metadata.resource_version:
        return "unchanged", common.to_json(result, manifest.kind)
    return "configured", common.to_json(result, manifest.kind)


def _load(args: argparse.Namespace, *, require_name: bool) -> list[Manifest]:
    """Every manifest of the -f sources, or CliError listing every problem (nothing sent)."""
    from kubemu.cli import manifests

    docs = manifests.load_documents(args.filename, recursive=args.recursive)
    decoded, problems = manifests.decode(docs, namespace=args.namespace,
                                         require_name=require_name)
    if problems:
        raise CliError("\n".join(problems))  # one line per problem
    return decoded


async def run_apply(args: argparse.Namespace) -> int:
    from kubemu.cli import output

    if not args.filename:
        raise CliError("must specify one of -f and -k")
    # -o name keeps the per-object lines (kubectl's shouldPrintObject)
    printer = None if args.output in ("", "name") else output.make_printer(
        args.output, allowed=output.OBJECT_FORMATS)
    decoded = _load(args, require_name=True)
    cause = common.change_cause(args)
    if cause is not None:   # kubectl's Recorder.Record on each object before applying it
        for manifest in decoded:
            manifest.data["metadata"].setdefault("annotations", {})[common.CHANGE_CAUSE] = cause
            manifest.obj.metadata.annotations[common.CHANGE_CAUSE] = cause
    if args.output == "name":
        async with common.client_for(args) as client:
            failed = False
            for manifest in decoded:
                try:
                    await apply_one(client, manifest, dry_run=args.dry_run)
                    print(manifest.label, flush=True)
                except Exception as exc:  # noqa: BLE001 - print_error re-raises what is not ours
                    common.print_error(exc)
                    failed = True
            return 1 if failed else 0
    async with common.client_for(args) as client:
        return await apply_manifests(client, decoded, dry_run=args.dry_run, printer=printer)


# ---------------------------------------------------------------- create

async def create_manifests(client: Any, decoded: list[Manifest], *,
                           save_config: bool = False, dry_run: bool = False,
                           cause: str | None = None) -> int:
    """`cause`: the --record change-cause, written after last-applied-configuration
    (kubectl's create records after CreateOrUpdateAnnotation: not in the saved config)."""
    from kubemu.cli.manifests import last_applied_json

    failed = False
    suffix = " (server dry run)" if dry_run else ""
    for manifest in decoded:
        obj = manifest.obj
        if save_config or cause is not None:
            obj = copy.deepcopy(obj)
        if save_config:
            obj.metadata.annotations[LAST_APPLIED] = last_applied_json(manifest.data)
        if cause is not None:
            obj.metadata.annotations[common.CHANGE_CAUSE] = cause
        try:
            created = await client.create(obj, dry_run=dry_run)
        except Exception as exc:  # noqa: BLE001 - print_error re-raises what is not ours
            common.print_error(exc)
            failed = True
            continue
        name = created.metadata.name if created is not None else manifest.name
        print(f"{common.kind_label(manifest.kind)}/{name} created{suffix}", flush=True)
    return 1 if failed else 0


async def run_create(args: argparse.Namespace) -> int:
    if not args.filename:
        raise CliError("must specify one of -f and -k (or a resource: kubemu create "
                       "namespace|configmap|secret|service|deployment NAME ...)")
    decoded = _load(args, require_name=False)
    cause = common.change_cause(args)
    async with common.client_for(args) as client:
        return await create_manifests(client, decoded, save_config=args.save_config,
                                      dry_run=args.dry_run == "server", cause=cause)


async def create_generated(args: argparse.Namespace, data: dict[str, Any], *,
                           verb: str = "created", client: Any = None) -> int:
    """Create (or, with --dry-run=client, only print) an object a generator built,
    printed as kubectl prints it: `kind/name created` (or `verb`), or the object
    with -o. `client`: an open one to use (else one is opened for the call)."""
    from kubemu.api import codec, errors
    from kubemu.api.kinds import REGISTRY
    from kubemu.cli import generate, output

    try:
        kind = REGISTRY.by_gvk(data["apiVersion"], data["kind"])
    except errors.BadRequest as exc:
        raise CliError(exc.message) from None
    dry_run = args.dry_run or "none"
    printer = output.make_printer(args.output, allowed=output.OBJECT_FORMATS,
                                  json_sort_keys=dry_run != "client")
    if dry_run == "client":
        doc = data  # kubectl prints its generated struct as it is
    else:
        body = generate.prune_nulls(data)
        if kind.namespaced:
            body["metadata"]["namespace"] = common.namespace_of(args)
        try:
            obj = codec.from_dict(kind.message, body, kind=kind.kind)
        except errors.Invalid as exc:
            raise CliError(exc.message) from None
        if client is None:
            async with common.client_for(args) as own:
                created = await own.create(obj, dry_run=dry_run == "server")
        else:
            created = await client.create(obj, dry_run=dry_run == "server")
        doc = common.to_json(created if created is not None else obj, kind)
    if printer is None:
        name = (doc.get("metadata") or {}).get("name", "")
        print(f"{common.kind_label(kind)}/{name} {verb}{DRY_RUN_SUFFIX.get(dry_run, '')}")
    else:
        sys.stdout.write(printer.render(doc))
    return 0


async def run_create_object(args: argparse.Namespace) -> int:
    """`create namespace|configmap|secret ...|service ...|deployment|ingress|job|cronjob NAME ...`."""
    data = args.build(args)
    if inspect.isawaitable(data):
        data = await data
    return await create_generated(args, data)


def _split_pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CliError(f"invalid {flag} {text!r}: expected key=value")
    return key, value


def _data_from(args: argparse.Namespace) -> dict[str, bytes]:
    """--from-literal k=v and --from-file [key=]path, in order; a key given twice is an error."""
    from kubemu.cli import generate

    data: dict[str, bytes] = {}
    for literal in args.from_literal:
        key, value = _split_pair(literal, "--from-literal")
        if key in data:
            raise CliError(f"cannot add key {key}, another key by that name already exists "
                           f"in data: {sorted(data)}")
        data[key] = value.encode()
    for key, value in generate.files_data(args.from_file).items():
        if key in data:
            raise CliError(f"cannot add key {key}, another key by that name already exists "
                           f"in data: {sorted(data)}")
        data[key] = value
    return data


def _name(args: argparse.Namespace) -> str:
    return args.name


def _namespace_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.namespace(args.name)


def _configmap_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    data = {k: v.decode("utf-8", errors="replace") for k, v in _data_from(args).items()}
    return generate.configmap(args.name, args.namespace, data)


def _secret_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.secret(args.name, args.namespace, args.type, _data_from(args))


def _secret_tls_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.secret_tls(args.name, args.namespace, args.cert, args.key)


def _secret_docker_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.secret_docker_registry(
        args.name, args.namespace, username=args.docker_username,
        password=args.docker_password, email=args.docker_email, server=args.docker_server,
        from_files=args.from_file)


def _service_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    tcp = [part for value in args.tcp for part in value.split(",") if part]
    return generate.service(args.service_kind, args.name, args.namespace, tcp=tcp,
                            cluster_ip=getattr(args, "clusterip", ""),
                            node_port=getattr(args, "node_port", 0),
                            external_name=getattr(args, "external_name", ""))


def _deployment_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.deployment(args.name, args.namespace, images=args.image,
                               replicas=args.replicas, port=args.port,
                               command=list(args.trailing))


async def _job_dict(args: argparse.Namespace) -> dict[str, Any]:
    """kubectl create job: from --image (and a command after --), or --from=cronjob/NAME,
    read from the server even for --dry-run=client, as kubectl reads it."""
    from kubemu.cli import generate

    if bool(args.image) == bool(args.from_):
        raise CliError("either --image or --from must be specified")
    command = list(args.trailing)
    if args.from_:
        if command:
            raise CliError("cannot specify --from and command")
        targets = common.parse_targets([args.from_])
        if len(targets) != 1 or len(targets[0].names) != 1:
            raise CliError("from must be an existing cronjob")
        kind, source = targets[0].kind, targets[0].names[0]
        async with common.client_for(args) as client:
            found = await client.get(kind.resource, source, common.namespace_of(args))
        if kind.resource != "cronjobs":
            raise CliError(f"unknown object type *v1.{kind.kind}")
        return generate.job_from_cronjob(args.name, args.namespace, common.to_json(found, kind))
    return generate.job(args.name, args.namespace, image=args.image, command=command)


def _ingress_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.ingress(args.name, args.namespace, rules=args.rule,
                            default_backend=args.default_backend, class_name=args.class_,
                            annotations=args.annotation)


def _quota_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.resource_quota(args.name, args.namespace, hard=args.hard,
                                   scopes=args.scopes)


def _pdb_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.pod_disruption_budget(args.name, args.namespace, selector=args.selector,
                                          min_available=args.min_available,
                                          max_unavailable=args.max_unavailable)


async def run_create_pdb(args: argparse.Namespace) -> int:
    """kubectl wraps the server's refusal: `failed to create poddisruptionbudgets: ...`."""
    from kubemu.api import errors

    data = _pdb_dict(args)
    try:
        return await create_generated(args, data)
    except errors.ApiError as exc:
        raise CliError(f"failed to create poddisruptionbudgets: {exc.message}") from None


def _cronjob_dict(args: argparse.Namespace) -> dict[str, Any]:
    from kubemu.cli import generate

    return generate.cronjob(args.name, args.namespace, image=args.image,
                            schedule=args.schedule, restart=args.restart,
                            command=list(args.trailing))


# ---------------------------------------------------------------- argparse

def _add_file_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-f", "--filename", action="append", default=[],
                   help=f"file, directory or - (stdin) with the objects to {what}; repeatable")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="process directories given with -f recursively")


def add_dry_run_arg(p: argparse.ArgumentParser, *, client: bool = True) -> None:
    choices = ("none", "client", "server") if client else ("none", "server")
    p.add_argument("--dry-run", choices=choices, default="none", nargs="?",
                   const="client" if client else "server",
                   help="client: only print what would be sent; server: the apiserver checks "
                        "it all and stores nothing")


def add_object_output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="",
                   metavar="json|yaml|name|jsonpath=...|go-template=...",
                   help="print the object (json, yaml, name, jsonpath=, go-template=, ...)")


def _add_object_output_args(p: argparse.ArgumentParser) -> None:
    common.add_namespace_arg(p, nested=True)
    add_object_output_arg(p)
    add_dry_run_arg(p)
    p.set_defaults(func=run_create_object)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("apply", help="apply a configuration to objects by file or stdin",
                              description="Create or update objects from manifests, "
                                          "like kubectl apply.")
    _add_file_args(p, "apply")
    common.add_namespace_arg(p)
    add_object_output_arg(p)
    add_dry_run_arg(p)
    common.add_record_arg(p)
    p.set_defaults(func=run_apply)

    p = subparsers.add_parser("create", help="create objects from a file or stdin",
                              description="Create objects from manifests, or one object "
                                          "from flags.")
    _add_file_args(p, "create")
    common.add_namespace_arg(p)
    p.add_argument("--save-config", action="store_true",
                   help="record the manifest in last-applied-configuration (for apply later)")
    p.add_argument("--dry-run", choices=("none", "server"), default="none")
    common.add_record_arg(p)
    p.set_defaults(func=run_create)
    kinds = p.add_subparsers(dest="create_kind", metavar="KIND")

    q = kinds.add_parser("namespace", aliases=["ns"], help="create a namespace")
    q.add_argument("name")
    _add_object_output_args(q)
    q.set_defaults(build=_namespace_dict)

    q = kinds.add_parser("configmap", aliases=["cm"], help="create a configmap")
    q.add_argument("name")
    q.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH")
    _add_object_output_args(q)
    q.set_defaults(build=_configmap_dict)

    q = kinds.add_parser("secret", help="create a secret")
    secret_kinds = q.add_subparsers(dest="secret_kind", metavar="TYPE", required=True)
    g = secret_kinds.add_parser("generic", help="a secret from literals or files")
    g.add_argument("name")
    g.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE")
    g.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH")
    g.add_argument("--type", default="")
    _add_object_output_args(g)
    g.set_defaults(build=_secret_dict)

    g = secret_kinds.add_parser("tls", help="a TLS secret from a certificate and its key",
                                description="Create a kubernetes.io/tls secret from a PEM "
                                            "certificate and its private key.")
    g.add_argument("name")
    g.add_argument("--cert", default="", metavar="PATH", help="PEM certificate file")
    g.add_argument("--key", default="", metavar="PATH", help="PEM private key file")
    _add_object_output_args(g)
    g.set_defaults(build=_secret_tls_dict)

    g = secret_kinds.add_parser("docker-registry", help="a secret for pulling from a registry",
                                description="Create a kubernetes.io/dockerconfigjson secret.")
    g.add_argument("name")
    g.add_argument("--docker-server", default="https://index.docker.io/v1/")
    g.add_argument("--docker-username", default="")
    g.add_argument("--docker-password", default="")
    g.add_argument("--docker-email", default="")
    g.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH")
    _add_object_output_args(g)
    g.set_defaults(build=_secret_docker_dict)

    q = kinds.add_parser("service", aliases=["svc"], help="create a service")
    service_kinds = q.add_subparsers(dest="service_kind", metavar="TYPE", required=True)
    for service_kind, what in (("clusterip", "a ClusterIP service"),
                               ("nodeport", "a NodePort service"),
                               ("loadbalancer", "a LoadBalancer service"),
                               ("externalname", "an ExternalName service")):
        g = service_kinds.add_parser(service_kind, help=what,
                                     description=f"Create {what} selecting app=NAME.")
        g.add_argument("name")
        g.add_argument("--tcp", action="append", default=[], metavar="PORT[:TARGETPORT]",
                       help="port pairs; repeatable or comma-separated")
        if service_kind == "clusterip":
            g.add_argument("--clusterip", default="", help="a cluster IP, or None (headless)")
        elif service_kind == "nodeport":
            g.add_argument("--node-port", type=int, default=0)
        elif service_kind == "externalname":
            g.add_argument("--external-name", required=True)
        _add_object_output_args(g)
        g.set_defaults(build=_service_dict, service_kind=service_kind)

    q = kinds.add_parser("deployment", aliases=["deploy"], help="create a deployment")
    q.add_argument("name")
    q.add_argument("--image", action="append", default=[], help="container image; repeatable")
    q.add_argument("--replicas", type=int, default=1)
    q.add_argument("--port", type=int, default=-1)
    _add_object_output_args(q)
    # `-- COMMAND ARGS...` after the flags: the container's command.
    q.set_defaults(build=_deployment_dict, accepts_trailing=True)

    q = kinds.add_parser("ingress", aliases=["ing"], help="create an ingress",
                         description="Create an ingress with the specified name: "
                                     "--rule=host/path=service:port[,tls[=secret]].")
    q.add_argument("name")
    q.add_argument("--rule", action="append", default=[],
                   metavar="host/path=service:port[,tls[=secret]]",
                   help="a rule; a path ending in * is a Prefix path, else Exact; repeatable")
    q.add_argument("--default-backend", default="", metavar="service:port",
                   help="the backend of requests no rule matches")
    q.add_argument("--class", dest="class_", default="", help="the ingress class")
    q.add_argument("--annotation", action="append", default=[], metavar="KEY=[VALUE]",
                   help="an annotation; repeatable")
    _add_object_output_args(q)
    q.set_defaults(build=_ingress_dict)

    q = kinds.add_parser("quota", aliases=["resourcequota"], help="create a resource quota",
                         description="Create a resource quota with the specified name, hard "
                                     "limits, and optional scopes.")
    q.add_argument("name")
    q.add_argument("--hard", default="", metavar="RESOURCE=QUANTITY,...",
                   help="a comma-delimited set of resource=quantity pairs that define a hard "
                        "limit")
    q.add_argument("--scopes", default="", metavar="SCOPE,...",
                   help="a comma-delimited set of quota scopes that must all match each "
                        "object tracked by the quota")
    _add_object_output_args(q)
    q.set_defaults(build=_quota_dict)

    q = kinds.add_parser("poddisruptionbudget", aliases=["pdb"],
                         help="create a pod disruption budget",
                         description="Create a pod disruption budget with the specified name: "
                                     "--selector and one of --min-available or "
                                     "--max-unavailable (a number or a percentage).")
    q.add_argument("name")
    q.add_argument("--selector", default="", help="a label selector for the budget's pods")
    q.add_argument("--min-available", default="",
                   help="the minimum number or percentage of available pods")
    q.add_argument("--max-unavailable", default="",
                   help="the maximum number or percentage of unavailable pods")
    _add_object_output_args(q)
    q.set_defaults(func=run_create_pdb)

    q = kinds.add_parser("job", help="create a job",
                         description="Create a job running an image (and a command after --), "
                                     "or from a cronjob's template: --from=cronjob/NAME.")
    q.add_argument("name")
    q.add_argument("--image", default="", help="the image to run")
    q.add_argument("--from", dest="from_", default="", metavar="cronjob/NAME",
                   help="the cronjob whose job template the job copies")
    _add_object_output_args(q)
    q.set_defaults(build=_job_dict, accepts_trailing=True)

    q = kinds.add_parser("cronjob", aliases=["cj"], help="create a cronjob",
                         description="Create a cronjob running an image on a schedule.")
    q.add_argument("name")
    q.add_argument("--image", required=True, help="the image to run")
    q.add_argument("--schedule", required=True, help="a schedule in the cron format")
    q.add_argument("--restart", default="", metavar="OnFailure|Never",
                   help="the job's restart policy (default OnFailure)")
    _add_object_output_args(q)
    q.set_defaults(build=_cronjob_dict, accepts_trailing=True)
