"""API errors and their one mapping to gRPC status codes.

Every component raises and catches these classes; the apiserver turns them
into a gRPC status (code + Kubernetes-style message + a `kubemu-reason`
trailer) and the clientset turns a status back into the same class. Each
class says whether retrying the same call can help (`temporary`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import grpc

REASON_KEY = "kubemu-reason"
# The id of one call, sent by the client and bound into the server's log lines
# (made by the server, and sent back, when a client sent none).
REQUEST_ID_KEY = "x-request-id"


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One problem with one field, worded as Kubernetes words it."""

    path: str
    type: str  # "Required value", "Invalid value", "Unsupported value", ...
    detail: str = ""
    value: Any = None
    has_value: bool = False

    def __str__(self) -> str:
        text = f"{self.path}: {self.type}" if self.path else self.type
        if self.has_value:
            text += f": {_quote(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", detail, value, True)


def unsupported(path: str, value: Any, allowed: Iterable[str]) -> FieldError:
    options = ", ".join(f'"{a}"' for a in allowed)
    return FieldError(path, "Unsupported value", f"supported values: {options}", value, True)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, "Duplicate value", "", value, True)


def too_long(path: str, value: Any, limit: int) -> FieldError:
    return FieldError(path, "Too long", f"must have at most {limit} bytes", value, True)


def unknown_field(path: str) -> FieldError:
    return FieldError(path, "unknown field")


class ApiError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "InternalError"
    temporary: bool = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "BadRequest"


class Invalid(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "Invalid"

    def __init__(self, kind: str, name: str, errors: list[FieldError] | None = None,
                 message: str | None = None):
        self.kind, self.name = kind, name
        self.field_errors = list(errors or [])
        if message is None:
            parts = [str(e) for e in self.field_errors]
            detail = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
            message = f'{kind} "{name}" is invalid: {detail}'
        super().__init__(message)


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NotFound"


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "AlreadyExists"


class Conflict(ApiError):
    code = grpc.StatusCode.ABORTED
    reason = "Conflict"
    temporary = True


class Expired(ApiError):
    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "Expired"


class Forbidden(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "Forbidden"


class Unauthorized(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "Unauthorized"


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "ServiceUnavailable"
    temporary = True


class RequestEntityTooLarge(ApiError):
    """HTTP 413: the request, or the object it would store, is over a size limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RequestEntityTooLarge"


class TooManyRequests(ApiError):
    """HTTP 429: try again later (e.g. an eviction a disruption budget forbids
    now). Shares RESOURCE_EXHAUSTED with 413; the reason trailer tells them apart."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TooManyRequests"
    temporary = True


class Timeout(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "Timeout"
    temporary = True


class MethodNotAllowed(ApiError):
    """HTTP 405: the resource does not support the verb (e.g. writes to the metrics API)."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "MethodNotAllowed"


def method_not_supported(qualified_resource: str, action: str) -> MethodNotAllowed:
    """apimachinery's NewMethodNotSupported."""
    return MethodNotAllowed(
        f'{action} is not supported on resources of kind "{qualified_resource}"')


class Internal(ApiError):
    code = grpc.StatusCode.INTERNAL
    reason = "InternalError"


_BY_REASON = {cls.reason: cls for cls in (
    BadRequest, Invalid, NotFound, AlreadyExists, Conflict, Expired, Forbidden,
    Unauthorized, Unavailable, Timeout, Internal, RequestEntityTooLarge, TooManyRequests,
    MethodNotAllowed)}
_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: Invalid,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.OUT_OF_RANGE: Expired,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.UNAUTHENTICATED: Unauthorized,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Timeout,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RequestEntityTooLarge,
}


_NAMESPACE_TERMINATING = "because it is being terminated"


def namespace_terminating(namespace: str) -> Forbidden:
    """NamespaceLifecycle admission's refusal of new content in a namespace
    that is being deleted (Kubernetes' NamespaceTerminatingCause)."""
    return Forbidden(f"unable to create new content in namespace {namespace} "
                     f"{_NAMESPACE_TERMINATING}")


def is_namespace_terminating(err: BaseException) -> bool:
    """Whether `err` is that refusal: a controller's create that meets it
    gives up quietly, as Kubernetes' do (the namespace controller is
    deleting everything in it anyway). Told by its message, the only part of
    the status cause that travels over gRPC."""
    return isinstance(err, Forbidden) and _NAMESPACE_TERMINATING in err.message


def not_found(resource: str, name: str) -> NotFound:
    return NotFound(f'{resource} "{name}" not found')


def already_exists(resource: str, name: str) -> AlreadyExists:
    return AlreadyExists(f'{resource} "{name}" already exists')


def conflict(resource: str, name: str, why: str = "") -> Conflict:
    why = why or ("the object has been modified; please apply your changes "
                  "to the latest version and try again")
    return Conflict(f'Operation cannot be fulfilled on {resource} "{name}": {why}')


def request_entity_too_large(what: str, limit_b: int) -> RequestEntityTooLarge:
    """Kubernetes' 413 wording (`Request entity too large: limit is 3145728`),
    naming what was too large when known."""
    detail = f"{what}: limit is {limit_b}" if what else f"limit is {limit_b}"
    return RequestEntityTooLarge(f"Request entity too large: {detail}")


def internal(message: str) -> Internal:
    """Kubernetes' NewInternalError wording."""
    return Internal(f"Internal error occurred: {message}")


def storage_error(kind: str, code: int, key: str, detail: str) -> str:
    """The text of Kubernetes' storage.StorageError (kind: "invalid object",
    "corrupt object", ...; code: its ErrCode number)."""
    return (f"StorageError: {kind}, Code: {code}, Key: {key}, ResourceVersion: 0, "
            f"AdditionalErrorMsg: {detail}")


def precondition_failed(resource: str, name: str, key: str, what: str, wanted: str,
                        actual: str) -> Conflict:
    """A failed uid or resourceVersion precondition, worded as kube-apiserver
    words it (storage.Preconditions.Check inside a Conflict)."""
    detail = (f"Precondition failed: {what} in precondition: {wanted}, "
              f"{what} in object meta: {actual}")
    return conflict(resource, name, storage_error("invalid object", 4, key, detail))


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """The ApiError a failed call stands for (the inverse of the server mapping)."""
    code = err.code()
    message = err.details() or code.name
    reason = None
    trailers = err.trailing_metadata() or ()
    for key, value in trailers:
        if key == REASON_KEY:
            reason = value
    cls = _BY_REASON.get(reason) if reason else None
    if cls is None:
        cls = _BY_CODE.get(code, Internal)
    if cls is Invalid:
        error = Invalid.__new__(Invalid)
        error.kind, error.name, error.field_errors = "", "", []
        ApiError.__init__(error, message)
        return error
    return cls(message)
