"""`-o FORMAT`: kubectl's non-table printers, and `--sort-by`.

`make_printer(output, allowed=...)` turns the flag into a Printer (None for
the human-readable table, which printers.py draws). Each Printer renders one
document -- an object, or a `v1 List` of several -- to text:
- json: encoding/json, 4-space indent, sorted keys, `<>&` escaped, as kubectl;
- yaml: `---` between documents after the first (watch);
- name: `kind[.group]/name`, one line per object;
- jsonpath / jsonpath-as-json / jsonpath-file: kubemu.cli.jsonpath;
- go-template / go-template-file (and kubectl's aliases template, templatefile):
  kubemu.cli.gotemplate;
- custom-columns=HEADER:PATH,... / custom-columns-file: one row per object
  (the items of a List), the header once, values joined by `,`, `<none>` when
  a path finds nothing.
Errors use kubectl's words and raise CliError; a failed go-template also
writes kubectl's debugging text to stdout (as kubectl does) before raising.
`sort_objects` is kubectl's --sort-by (SortObjects): values compared as Go's
isLess does, quantities as quantities, objects without the field first.
Only the standard library and kubemu.cli modules are imported.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Callable

from kubemu.cli.common import CliError

JSONPATH_FORMATS = ("jsonpath", "jsonpath-as-json", "jsonpath-file")
TEMPLATE_FORMATS = ("go-template", "go-template-file", "template", "templatefile")
COLUMN_FORMATS = ("custom-columns", "custom-columns-file")
# What kubectl lists in "allowed formats are: ..." (sorted, as it prints them).
OBJECT_FORMATS = tuple(sorted(("json", "yaml", "name", *JSONPATH_FORMATS, *TEMPLATE_FORMATS)))
GET_FORMATS = tuple(sorted((*OBJECT_FORMATS, *COLUMN_FORMATS, "wide")))
# A template file bigger than this is a mistake.
TEMPLATE_FILE_BYTES_MAX = 1024 * 1024


def is_list(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("items"), list) and \
        str(doc.get("kind", "")).endswith("List")


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Several objects, the way kubectl get prints them: a v1 List."""
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


def kind_label_of(obj: dict[str, Any]) -> str:
    """`pod`, `deployment.apps`: from an object's apiVersion and kind."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    kind = str(obj.get("kind", "")).lower()
    return f"{kind}.{group}" if group else kind


class Printer:
    """Renders documents; `render` is called once per document (each watch event too)."""

    def render(self, doc: Any) -> str:
        raise NotImplementedError


class JSONPrinter(Printer):
    def __init__(self, *, sort_keys: bool = True):
        self.sort_keys = sort_keys

    def render(self, doc: Any) -> str:
        from kubemu.cli import gofmt

        return gofmt.marshal(doc, "    ", sort_keys=self.sort_keys) + "\n"


class YAMLPrinter(Printer):
    def __init__(self) -> None:
        self.count = 0

    def render(self, doc: Any) -> str:
        from kubemu.cli import printers

        text = ("---\n" if self.count else "") + printers.format_yaml(doc)
        self.count += 1
        return text


class NamePrinter(Printer):
    def __init__(self, suffix: str = ""):
        self.suffix = suffix  # "created", "deleted (dry run)", ...

    def render(self, doc: Any) -> str:
        items = doc["items"] if is_list(doc) else [doc]
        tail = f" {self.suffix}" if self.suffix else ""
        return "".join(f"{kind_label_of(o)}/{(o.get('metadata') or {}).get('name', '')}{tail}\n"
                       for o in items)


class JSONPathPrinter(Printer):
    def __init__(self, template: str, *, allow_missing_keys: bool, as_json: bool):
        from kubemu.cli import jsonpath

        self.template = template
        try:
            self.path = jsonpath.JSONPath(template, allow_missing_keys=allow_missing_keys,
                                          json_output=as_json)
        except jsonpath.JSONPathError as exc:
            raise CliError(jsonpath.parse_error(template, exc)) from None

    def render(self, doc: Any) -> str:
        from kubemu.cli import jsonpath

        try:
            return self.path.execute(doc)
        except jsonpath.JSONPathError as exc:
            raise CliError(jsonpath.execute_error(self.template, exc, doc),
                           verbatim=True) from None


class GoTemplatePrinter(Printer):
    def __init__(self, template: str):
        from kubemu.cli import gotemplate

        self.text = template
        try:
            self.template = gotemplate.Template(template)
        except gotemplate.TemplateError as exc:
            raise CliError(gotemplate.parse_error(template, exc)) from None

    def render(self, doc: Any) -> str:
        from kubemu.cli import gotemplate

        try:
            return self.template.execute(doc)
        except gotemplate.TemplateError as exc:
            # kubectl writes what the template produced and a debugging dump to
            # stdout, then fails with the error.
            sys.stdout.write(getattr(exc, "partial", "")
                             + gotemplate.debug_dump(self.text, exc, doc))
            raise CliError(gotemplate.execute_error(self.text, exc)) from None


@dataclasses.dataclass
class Column:
    header: str
    path: Any  # a parsed JSONPath


class CustomColumnsPrinter(Printer):
    def __init__(self, columns: list[tuple[str, str]], *, no_headers: bool):
        from kubemu.cli import jsonpath, printers

        self.columns: list[Column] = []
        for header, spec in columns:
            try:
                self.columns.append(Column(header, jsonpath.JSONPath(spec,
                                                                     allow_missing_keys=True)))
            except jsonpath.JSONPathError as exc:
                raise CliError(str(exc)) from None
        self.no_headers = no_headers
        self.header_printed = False
        self.writer = printers.TabWriter()

    def render(self, doc: Any) -> str:
        rows = []
        if not self.no_headers and not self.header_printed:
            rows.append([c.header for c in self.columns])
            self.header_printed = True
        for obj in doc["items"] if is_list(doc) else [doc]:
            rows.append([self._cell(c, obj) for c in self.columns])
        return self.writer.render(rows)

    @staticmethod
    def _cell(column: Column, obj: Any) -> str:
        from kubemu.cli import gofmt, jsonpath

        try:
            values = column.path.find(obj)
        except jsonpath.JSONPathError as exc:
            raise CliError(str(exc)) from None
        texts = [] if values and values[0] else ["<none>"]
        texts += [escape_terminal(gofmt.sprint(v)) for results in values for v in results]
        return ",".join(texts)


def escape_terminal(text: str) -> str:
    """kubectl's EscapeTerminal: no raw escape sequences or carriage returns in tables."""
    return text.replace("\x1b", "^[").replace("\r", "\\r")


def _read_template_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(TEMPLATE_FILE_BYTES_MAX)
    except FileNotFoundError:
        raise CliError(f"error reading --template {path}, open {path}: no such file or "
                       "directory") from None
    except OSError as exc:
        raise CliError(f"error reading --template {path}, open {path}: "
                       f"{exc.strerror.lower() if exc.strerror else exc}") from None


def _column_specs(spec: str) -> list[tuple[str, str]]:
    from kubemu.cli import jsonpath

    if not spec:
        raise CliError("custom-columns format specified but no custom columns given")
    out = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep:
            raise CliError(f"unexpected custom-columns spec: {part}, expected "
                           "<header>:<json-path-expr>")
        try:
            out.append((header, jsonpath.relaxed(path)))
        except jsonpath.JSONPathError as exc:
            raise CliError(str(exc)) from None
    return out


def _column_file(path: str) -> list[tuple[str, str]]:
    from kubemu.cli import jsonpath

    lines = _read_template_file(path).splitlines()
    if not lines:
        raise CliError("invalid template, missing header line. Expected format is one line of "
                       "space separated headers, one line of space separated column specs.")
    if len(lines) < 2:
        raise CliError("invalid template, missing spec line. Expected format is one line of "
                       "space separated headers, one line of space separated column specs.")
    headers, specs = lines[0].split(), lines[1].split()
    if len(headers) != len(specs):
        raise CliError(f"number of headers ({len(headers)}) and field specifications "
                       f"({len(specs)}) don't match")
    try:
        return [(h, jsonpath.relaxed(s)) for h, s in zip(headers, specs)]
    except jsonpath.JSONPathError as exc:
        raise CliError(str(exc)) from None


def make_printer(output: str | None, *, allowed: tuple[str, ...] = GET_FORMATS,
                 no_headers: bool = False, allow_missing_keys: bool = True,
                 template: str = "", json_sort_keys: bool = True,
                 name_suffix: str = "") -> Printer | None:
    """The printer for `-o output`; None means kubectl's human-readable table."""
    output = output or ""
    if template and output in ("", *JSONPATH_FORMATS, *TEMPLATE_FORMATS):
        # --template=...: -o defaults to go-template, as kubectl does
        fmt, value = output or "go-template", template
    else:
        fmt, sep, value = output.partition("=")
        if sep and fmt not in (*JSONPATH_FORMATS, *TEMPLATE_FORMATS, *COLUMN_FORMATS):
            fmt = output  # `json=x` is no format
    if fmt == "" or (fmt == "wide" and "wide" in allowed):
        return None
    if fmt not in allowed:
        raise CliError(f'unable to match a printer suitable for the output format "{output}", '
                       f'allowed formats are: {",".join(allowed)}')
    if fmt == "json":
        return JSONPrinter(sort_keys=json_sort_keys)
    if fmt == "yaml":
        return YAMLPrinter()
    if fmt == "name":
        return NamePrinter(name_suffix)
    if fmt in COLUMN_FORMATS:
        if fmt == "custom-columns":
            return CustomColumnsPrinter(_column_specs(value), no_headers=no_headers)
        if not value:
            raise CliError("custom-columns-file format specified but no custom columns file "
                           "given")
        return CustomColumnsPrinter(_column_file(value), no_headers=no_headers)
    if not value:
        raise CliError("template format specified but no template given")
    if fmt in ("jsonpath-file", "go-template-file", "templatefile"):
        value = _read_template_file(value)
    if fmt in JSONPATH_FORMATS:
        return JSONPathPrinter(value, allow_missing_keys=allow_missing_keys,
                               as_json=fmt == "jsonpath-as-json")
    return GoTemplatePrinter(value)


# ---------------------------------------------------------------- --sort-by

def _quantity(text: str) -> Any:
    from kubemu.api import quantity

    try:
        return quantity.parse(text)
    except ValueError:
        return None


def _is_less(a: Any, b: Any, field: str) -> bool:
    """kubectl's isLess for two decoded-JSON values (an error for unsortable kinds)."""
    if a is None and b is None:
        return False
    if a is None:
        return True
    if b is None:
        return False
    if isinstance(a, str) and isinstance(b, str):
        qa, qb = _quantity(a), _quantity(b)
        if qa is not None and qb is not None:
            return qa < qb
        return a < b
    same_number = (isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool)
                   and not isinstance(b, bool)) or (isinstance(a, float) and isinstance(b, float))
    if same_number:
        return a < b
    from kubemu.cli import gofmt

    kind = "map" if isinstance(a, dict) else "slice" if isinstance(a, list) else "interface"
    raise CliError(f"Field {field} in *unstructured.Unstructured is an unsortable type: {kind}, "
                   f"err: unsortable type: {gofmt.type_name(a)}")


def sort_objects(objs: list[Any], field: str, *, key: Callable[[Any], Any] = lambda o: o,
                 min_count: int = 1) -> list[Any]:
    """`objs` ordered by the JSONPath `field` (kubectl's --sort-by).

    Fewer than `min_count` objects are returned as they are, unchecked: kubectl
    checks the field on a single object for -o json|name|..., not for tables (2).
    """
    from kubemu.cli import jsonpath

    if len(objs) < max(min_count, 1):
        return list(objs)
    try:
        path = jsonpath.JSONPath(jsonpath.relaxed(field), allow_missing_keys=True)
    except jsonpath.JSONPathError as exc:
        raise CliError(str(exc)) from None
    firsts: list[tuple[bool, Any]] = []
    for obj in objs:
        try:
            values = path.find(key(obj))
        except jsonpath.JSONPathError as exc:
            raise CliError(str(exc)) from None
        found = bool(values and values[0])
        firsts.append((found, values[0][0] if found else None))
    if not any(found for found, _ in firsts):
        raise CliError(f'couldn\'t find any field with path "{path.template}" in the list of '
                       "objects")

    def less(i: int, j: int) -> bool:
        if not firsts[i][0]:
            return True
        if not firsts[j][0]:
            return False
        return _is_less(firsts[i][1], firsts[j][1], path.template)

    order = list(range(len(objs)))
    if len(order) <= 12:
        # Go's sort.Sort is an insertion sort at this size: same order as kubectl,
        # ties and objects without the field included.
        for i in range(1, len(order)):
            j = i
            while j > 0 and less(order[j], order[j - 1]):
                order[j], order[j - 1] = order[j - 1], order[j]
                j -= 1
    else:
        order.sort(key=functools.cmp_to_key(
            lambda i, j: -1 if less(i, j) else (1 if less(j, i) else 0)))
    return [objs[i] for i in order]

