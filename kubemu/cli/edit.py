"""`kubemu replace` and `kubemu edit`: write whole objects back, as kubectl does.

replace -f FILE: each object of the manifests is sent as an Update. One
without metadata.resourceVersion gets the live object's (kubectl's
overwrite), so only a resourceVersion written in the file is a
precondition (Conflict when stale). `--force` deletes each object, waits
until it is gone, and creates it from the file (`deployment.apps "web"
deleted`, then `deployment.apps/web replaced`). `--save-config` writes the
manifest into the last-applied-configuration annotation, as create does.

edit TYPE NAME... (or -f): the objects are written as YAML (one object, or a
`kind: List` of several) under kubectl's header comment to a temporary file
`kubemu-edit-*.yaml`, and `$KUBE_EDITOR`, else `$EDITOR`, else `vi` is run
on it. Then, as kubectl's editoptions:
- unchanged (comments and formatting aside): `Edit cancelled, no changes made.`;
  only comments left: `Edit cancelled, saved file was empty.`;
- a YAML syntax error, or an object the server refuses as Invalid: the file
  is reopened with the reasons in its header (`# deployments.apps "web" was
  not valid:` / `# * spec.replicas: ...`), and reopening it unchanged ends
  with `Edit cancelled, no valid changes were saved.`;
- otherwise each object is sent the two-way merge patch from the original
  to the edited one (apiVersion, kind and name must not change) and printed
  `deployment.apps/web edited` (`skipped` when it did not change); an object
  deleted meanwhile, or any other error, keeps the file and says where.
The editor reopens at most EDIT_ROUNDS_MAX times.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from typing import Any

from kubemu.cli import common
from kubemu.cli.common import CliError

Obj = dict[str, Any]
EDIT_ROUNDS_MAX = 100
HEADER = ("# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
          "# and an empty file will abort the edit. If an error occurs while saving this "
          "file will be\n"
          "# reopened with the relevant failures.\n"
          "#\n")
DELETE_WAIT_S = 168 * 3600.0   # replace --force waits as delete --wait does


# ---------------------------------------------------------------- replace

async def run_replace(args: argparse.Namespace) -> int:
    from kubemu.api import errors
    from kubemu.cli import apply, output

    if not args.filename:
        raise CliError("must specify one of -f and -k")
    printer = output.make_printer(args.output, allowed=output.OBJECT_FORMATS,
                                  name_suffix=_with_dry_run("replaced", args.dry_run)) \
        if args.output else None
    decoded = apply._load(args, require_name=True)
    cause = common.change_cause(args)
    failed = False
    async with common.client_for(args) as client:
        for manifest in decoded:
            kind, obj = manifest.kind, manifest.obj
            if args.save_config:
                from kubemu.cli.manifests import last_applied_json

                obj.metadata.annotations[common.LAST_APPLIED] = last_applied_json(manifest.data)
            if cause is not None:   # after the saved config, as kubectl's replace records
                obj.metadata.annotations[common.CHANGE_CAUSE] = cause
            try:
                if args.force:
                    await _delete_and_wait(client, manifest)
                    obj.metadata.resource_version = ""
                    result = await client.create(obj, dry_run=args.dry_run == "server")
                else:
                    if not obj.metadata.resource_version:
                        live = await client.get(kind.resource, manifest.name, manifest.namespace)
                        obj.metadata.resource_version = live.metadata.resource_version
                    result = await client.update(obj, dry_run=args.dry_run == "server")
            except errors.ApiError as exc:
                failed = True
                message = common.format_error(exc)
                if not message.startswith("The "):
                    message = (f"Error from server ({exc.reason}): error when replacing "
                               f"\"{manifest.source}\": {exc.message}")
                common.write_error(message)
                continue
            if printer is None:
                print(common.name_line(kind, manifest.name, "replaced", args.dry_run), flush=True)
            else:
                sys.stdout.write(printer.render(common.to_json(result, kind)))
    return 1 if failed else 0


async def _delete_and_wait(client: Any, manifest: Any) -> None:
    from kubemu.api import errors
    from kubemu.cli import delete

    kind = manifest.kind
    try:
        result = await client.delete(kind.resource, manifest.name, manifest.namespace,
                                     propagation_policy="Background")
    except errors.NotFound:
        return   # kubectl's replace --force creates what is not there
    print(f'{common.kind_label(kind)} "{manifest.name}" deleted', flush=True)
    if not result.deleted:
        uid = result.object.metadata.uid if result.object is not None else ""
        if not await delete._wait_gone(client, [(kind, manifest.namespace, manifest.name, uid)],
                                       DELETE_WAIT_S):
            raise CliError(f"timed out waiting for {kind.resource}/{manifest.name} to be deleted")


def _with_dry_run(text: str, dry_run: str) -> str:
    return text + {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")


# ---------------------------------------------------------------- edit (pure parts)

def manual_strip(text: str) -> str:
    """cmdutil.ManualStrip: drop comment lines (not `#!`)."""
    lines = text.split("\n")
    return "\n".join(line for line in lines
                     if not (line.strip().startswith("#") and not line.strip().startswith("#!")))


def strip_comments(text: str) -> str:
    """cmdutil.StripComments: the document as JSON when it parses, else manual_strip."""
    import yaml

    try:
        return json.dumps(yaml.safe_load(text), sort_keys=True)
    except yaml.YAMLError:
        return manual_strip(text)


def has_lines(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


def hash_on_line_break(text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch == "\n" and i + 1 < len(text) and text[i + 1] != "#":
            out.append("\n# ")
        else:
            out.append(ch)
    return "".join(out)


def header(reasons: list[tuple[str, list[str]]]) -> str:
    """kubectl's editHeader with the reasons of the last failed save."""
    out = [HEADER]
    for head, others in reasons:
        out.append(f"# {hash_on_line_break(head)}:\n" if others
                   else f"# {hash_on_line_break(head)}\n")
        out.extend(f"# * {hash_on_line_break(o)}\n" for o in others)
        out.append("#\n")
    return "".join(out)


def invalid_causes(exc: Any) -> list[str]:
    """`field: message` of each cause of an Invalid error (kubectl's details.causes)."""
    found = getattr(exc, "field_errors", None)
    if found:
        return [f"{e.path}: {str(e).removeprefix(e.path + ': ')}" if e.path else str(e)
                for e in found]
    _, sep, detail = exc.message.partition(" is invalid: ")
    if not sep:
        return []
    if detail.startswith("[") and detail.endswith("]"):
        return [part for part in detail[1:-1].split(", ") if part]
    return [detail]


def edited_objects(text: str) -> list[Obj]:
    """The objects of the edited file (a List is its items); ValueError on bad YAML."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValueError(f"error converting YAML to JSON: yaml: {where}"
                         f"{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"error converting YAML to JSON: yaml: {exc}") from None
    out: list[Obj] = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError(f"error converting YAML to JSON: not an object: {doc!r}")
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
            out.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
        else:
            out.append(doc)
    return out


def two_way_patch(original: Obj, edited: Obj) -> Obj:
    """The merge patch from `original` to `edited`; CliError when it would change what
    identifies the object (kubectl's preconditions)."""
    from kubemu.cli import apply

    patch = apply.merge_patch(original, edited)
    if "apiVersion" in patch or "kind" in patch or "name" in (patch.get("metadata") or {}):
        raise CliError("At least one of apiVersion, kind and name was changed")
    return patch


# ---------------------------------------------------------------- edit (I/O)

def editor_args() -> tuple[list[str], bool]:
    """kubectl's defaultEnvEditor: $KUBE_EDITOR, $EDITOR, else vi. A command with spaces
    is split on them, unless it has quotes or backslashes: then it is handed to
    $SHELL (default /bin/bash) -c. Returns (args, through a shell)."""
    editor = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    if " " not in editor:
        return [editor], False
    if not any(ch in editor for ch in "\"'\\"):
        return editor.split(" "), False
    return [os.environ.get("SHELL") or "/bin/bash", "-c", editor], True


def editor_argv(args: list[str], shell: bool, path: str) -> list[str]:
    """kubectl's Editor.Launch: the path appended (quoted, inside a shell's command)."""
    from kubemu.cli import gofmt

    if shell:
        return [*args[:-1], f"{args[-1]} {gofmt.quote(path)}"]
    return [*args, path]


async def launch(text: str) -> tuple[str, str]:
    """Write `text` to a new temporary file, run the editor on it: (edited text, path)."""
    from kubemu.cli import gofmt

    fd, path = tempfile.mkstemp(prefix="kubemu-edit-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    args, shell = editor_args()
    shown = "[" + " ".join(gofmt.quote(a) for a in args) + "]"   # Go's %q of a []string
    try:
        proc = await asyncio.create_subprocess_exec(*editor_argv(args, shell, path))
    except OSError:
        raise CliError(f"unable to launch the editor {shown}") from None
    if await proc.wait() != 0:
        raise CliError(f"there was a problem with the editor {shown}")
    with open(path) as f:
        return f.read(), path


def _preserved(path: str, message: str) -> CliError:
    """kubectl's preservedFile: say where the changes are, then the error."""
    if path and os.path.exists(path):
        common.write_error(f'A copy of your changes has been stored to "{path}"')
    return CliError(message)


def _remove(path: str) -> None:
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


async def run_edit(args: argparse.Namespace) -> int:
    from kubemu.api import errors
    from kubemu.cli import output, printers

    if not args.resources and not args.filename:
        raise CliError(common.NO_RESOURCES, verbatim=True)
    printer = output.make_printer(args.output, allowed=output.OBJECT_FORMATS,
                                  name_suffix="edited") if args.output else None
    async with common.client_for(args) as client:
        refs = await common.object_refs(client, args, common.namespace_of(args))
        infos = [(kind, ns, name, common.to_json(await client.get(kind.resource, name, ns), kind))
                 for kind, ns, name in refs]
        if not infos:
            raise CliError("edit cancelled, no objects found")
        by_uid = {info[3]["metadata"].get("uid"): info for info in infos}
        if len(infos) == 1:
            original_doc: Obj = infos[0][3]
        else:
            original_doc = {"apiVersion": "v1", "items": [i[3] for i in infos], "kind": "List",
                            "metadata": {}}
        original = printers.format_yaml(original_doc)
        cause = common.change_cause(args)
        reasons: list[tuple[str, list[str]]] = []
        contains_error = False
        edited, file = "", ""
        for _ in range(EDIT_ROUNDS_MAX):
            text = header(reasons) + (manual_strip(edited) if contains_error else original)
            previous = edited
            edited, new_file = await launch(text)
            if contains_error and strip_comments(previous) == strip_comments(edited):
                raise _preserved(new_file, "Edit cancelled, no valid changes were saved.")
            if file and file != new_file:
                _remove(file)
            file = new_file
            if strip_comments(original) == strip_comments(edited):
                _remove(file)
                common.write_error("Edit cancelled, no changes made.")
                return 0
            if not has_lines(edited):
                _remove(file)
                common.write_error("Edit cancelled, saved file was empty.")
                return 0
            reasons = []
            try:
                docs = edited_objects(edited)
            except ValueError as exc:
                contains_error = True
                reasons = [(f"The edited file had a syntax error: {exc}", [])]
                continue
            contains_error = False
            pending = retryable = notfound = 0
            for doc in docs:
                info = by_uid.get((doc.get("metadata") or {}).get("uid"))
                if info is None:
                    raise _preserved(file, f"no original object found for {json.dumps(doc)}")
                kind, ns, name, before = info
                if json.dumps(before, sort_keys=True) == json.dumps(doc, sort_keys=True):
                    print(common.name_line(kind, name, "skipped"), flush=True)
                    continue
                try:
                    patch = two_way_patch(before, doc)
                except CliError as exc:
                    raise _preserved(file, str(exc)) from None
                if cause is not None:   # kubectl's visitAnnotation: into the same patch
                    patch.setdefault("metadata", {}).setdefault(
                        "annotations", {})[common.CHANGE_CAUSE] = cause
                label = f'{kind.qualified_resource} "{name}"'
                try:
                    result = await client.patch(kind.resource, name, ns, patch=patch)
                except errors.Invalid as exc:
                    pending += 1
                    reasons.append((f"{label} was not valid", invalid_causes(exc)))
                    common.write_error(f"error: {label} is invalid")
                    continue
                except errors.NotFound:
                    notfound += 1
                    common.write_error(f"error: {label} could not be found on the server")
                    continue
                except errors.ApiError as exc:
                    retryable += 1
                    common.write_error(f"error: {label} could not be patched: {exc.message}")
                    continue
                if printer is None:
                    print(common.name_line(kind, name, "edited"), flush=True)
                else:
                    sys.stdout.write(printer.render(common.to_json(result, kind)))
            if retryable:
                common.write_error(f"You can run `kubemu replace -f {file}` to try this "
                                   "update again.")
                return 1
            if notfound:
                common.write_error(f'The edits you made on deleted resources have been saved '
                                   f'to "{file}"')
                return 1
            if not pending:
                _remove(file)
                return 0
            contains_error = bool(reasons)
        raise _preserved(file, f"gave up after reopening the editor {EDIT_ROUNDS_MAX} times")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("replace", help="replace a resource by file name or stdin",
                              description="Replace objects with the manifests' content, like "
                                          "kubectl replace.")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("--force", action="store_true",
                   help="delete the objects, then create them again")
    p.add_argument("--save-config", action="store_true",
                   help="record the manifest in last-applied-configuration (for apply later)")
    p.add_argument("-o", "--output", default="")
    p.add_argument("--dry-run", choices=("none", "server"), default="none", nargs="?",
                   const="server")
    common.add_namespace_arg(p)
    common.add_record_arg(p)
    p.set_defaults(func=run_replace)

    p = subparsers.add_parser("edit", help="edit a resource on the server",
                              description="Edit objects in $KUBE_EDITOR or $EDITOR (vi), like "
                                          "kubectl edit.")
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("-o", "--output", default="")
    common.add_namespace_arg(p)
    common.add_record_arg(p)
    p.set_defaults(func=run_edit)
