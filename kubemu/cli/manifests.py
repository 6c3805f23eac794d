"""Manifests from `-f FILE|DIR|-`: reading, splitting, strict decoding.

The model: every source is read and every document decoded before anything is
sent, so bad input (a YAML error, an unknown kind, a misspelled field) stops
the command with nothing written. A document becomes a `Manifest`: its kind,
the decoded message, and the manifest as given (with the namespace filled in,
as kubectl records it in last-applied-configuration).
YAML is read as Kubernetes reads it: several documents per file, `kind: List`
expanded, unquoted dates kept as strings.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import pathlib
import sys
from typing import TYPE_CHECKING, Any

from kubemu.cli.common import DEFAULT_NAMESPACE, LAST_APPLIED, CliError, kind_label

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from kubemu.api.kinds import Kind

MANIFEST_EXTENSIONS = (".yaml", ".yml", ".json")
# A manifest file bigger than this is a mistake, not a manifest.
_SOURCE_BYTES_MAX = 64 * 1024 * 1024
STDIN = "STDIN"


@dataclasses.dataclass
class Document:
    source: str  # a path, or STDIN
    data: Any


@dataclasses.dataclass
class Manifest:
    source: str
    kind: Kind
    obj: Message  # decoded, namespace set
    data: dict[str, Any]  # the manifest as given, namespace set, no last-applied annotation
    name: str
    namespace: str  # "" for cluster-scoped kinds

    @property
    def label(self) -> str:
        """`pod/nginx`, `deployment.apps/web`."""
        return f"{kind_label(self.kind)}/{self.name}"


# ---------------------------------------------------------------- reading

def read_sources(paths: list[str], *, recursive: bool = False) -> list[tuple[str, str]]:
    """(source name, text) for every -f argument; directories give their manifest files."""
    out: list[tuple[str, str]] = []
    for path in paths:
        if path == "-":
            out.append((STDIN, sys.stdin.read(_SOURCE_BYTES_MAX)))
            continue
        p = pathlib.Path(path)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(f for f in p.glob(pattern)
                           if f.is_file() and f.suffix in MANIFEST_EXTENSIONS)
            if not files:
                raise CliError(f'error reading [{path}]: recognized file extensions are '
                               f'[{" ".join(MANIFEST_EXTENSIONS)}]')
            out.extend((str(f), _read(f)) for f in files)
        elif p.exists():
            out.append((path, _read(p)))
        else:
            raise CliError(f'the path "{path}" does not exist')
    return out


def _read(path: pathlib.Path) -> str:
    if path.stat().st_size > _SOURCE_BYTES_MAX:
        raise CliError(f"{path}: larger than {_SOURCE_BYTES_MAX} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"error parsing {path}: not UTF-8 text: {exc}") from None


@functools.cache
def _loader() -> type:
    """A safe YAML loader that keeps unquoted timestamps as strings, as Kubernetes does."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    resolvers = {
        first: [(tag, regexp) for tag, regexp in entries
                if tag != "tag:yaml.org,2002:timestamp"]
        for first, entries in base.yaml_implicit_resolvers.items()}
    return type("KubernetesLoader", (base,), {"yaml_implicit_resolvers": resolvers})


def split_documents(text: str, source: str) -> list[Document]:
    """Every object in one source: YAML documents (or one JSON value), Lists expanded."""
    import yaml

    try:
        values = list(yaml.load_all(text, Loader=_loader()))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise CliError(f"error parsing {source}: {detail}") from None
    docs: list[Document] = []
    for value in values:
        if value is None:
            continue  # an empty document (`---` at the end, comments only)
        if (isinstance(value, dict) and isinstance(value.get("items"), list)
                and str(value.get("kind", "")).endswith("List")):
            docs.extend(Document(source, item) for item in value["items"] if item is not None)
        else:
            docs.append(Document(source, value))
    return docs


def load_documents(paths: list[str], *, recursive: bool = False) -> list[Document]:
    docs: list[Document] = []
    for source, text in read_sources(paths, recursive=recursive):
        docs.extend(split_documents(text, source))
    if not docs:
        raise CliError("no objects passed to apply" if paths else "must specify -f")
    return docs


# ---------------------------------------------------------------- decoding

def decode(docs: list[Document], *, namespace: str | None,
           require_name: bool = True) -> tuple[list[Manifest], list[str]]:
    """Strictly decode every document: (manifests, problems), problems one line each.

    `namespace` is the -n flag (None when not given). When problems is not
    empty the caller must send nothing.
    """
    from kubemu.api import codec, conversion, errors
    from kubemu.api.kinds import REGISTRY

    manifests: list[Manifest] = []
    problems: list[str] = []
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict):
            problems.append(f'error validating "{doc.source}": expected an object, '
                            f"got {type(data).__name__}")
            continue
        missing = [f"{key} not set" for key in ("apiVersion", "kind") if not data.get(key)]
        if missing:
            problems.append(f'error validating "{doc.source}": error validating data: '
                            f"[{', '.join(missing)}]")
            continue
        data = conversion.to_served(data)
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        name = meta.get("name") or ""
        try:
            kind = REGISTRY.by_gvk(str(data["apiVersion"]), str(data["kind"]))
        except errors.ApiError as exc:
            problems.append(f'resource mapping not found for name: "{name}" namespace: '
                            f'"{meta.get("namespace", "")}" from "{doc.source}": {exc.message}')
            continue
        try:
            obj = codec.from_dict(kind.message, data, kind=kind.kind)
        except errors.Invalid as exc:
            problems.append(f'error validating "{doc.source}": {exc.message}')
            continue
        if not isinstance(name, str) or not name:
            if require_name or not meta.get("generateName"):
                problems.append(f'error validating "{doc.source}": {kind.kind}: '
                                "resource name may not be empty")
                continue
        given = copy.deepcopy(data)
        given_meta = given.setdefault("metadata", {})
        if kind.namespaced:
            own = meta.get("namespace") or ""
            if namespace and own and own != namespace:
                problems.append(
                    f'the namespace from the provided object "{own}" does not match the '
                    f'namespace "{namespace}". You must pass \'--namespace={own}\' to '
                    "perform this operation.")
                continue
            ns = own or namespace or DEFAULT_NAMESPACE
            given_meta["namespace"] = ns
            obj.metadata.namespace = ns
        else:
            ns = ""
            given_meta.pop("namespace", None)
            obj.metadata.namespace = ""
        annotations = given_meta.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)
        manifests.append(Manifest(doc.source, kind, obj, given, name, ns))
    return manifests, problems


def last_applied_json(data: dict[str, Any]) -> str:
    """The last-applied-configuration annotation value kubectl writes: the manifest as
    Go's json.Encoder writes it (sorted keys, `<>&` escaped, a final newline), with
    metadata.annotations present even when empty, as kubectl's GetModifiedConfiguration
    leaves it."""
    from kubemu.cli import gofmt

    doc = copy.deepcopy(data)
    meta = doc.setdefault("metadata", {})
    if isinstance(meta, dict) and not isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {}
    return gofmt.marshal(doc) + "\n"
