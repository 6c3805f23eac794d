"""The image catalog: an image reference -> how to run it on this machine.

There is no registry and no image filesystem. An image is a catalog entry that
says what the image's entrypoint, cmd, env and workdir are, and which host
programs stand in for the programs inside it (`programs`: "/kuard" -> the
kuard demo app, "python3" -> this interpreter, "ash" -> /bin/sh). The runtime
puts the entry's bare-named programs in a bin directory first on PATH and
rewrites an absolute argv[0] that names one of its programs.

Matching follows Docker reference rules: `nginx`, `nginx:1.25`,
`docker.io/library/nginx:latest` and `nginx@sha256:...` are all the
repository `docker.io/library/nginx`. A pattern is `repository[:tag]` with
shell wildcards (`python:*`, `gcr.io/kuar-demo/kuard-amd64:*`); no tag means
any tag, and a digest-only reference matches only any-tag patterns. Entries
from an images file (`--images-file`, default `$KUBEMU_HOME/images.yaml`)
come before the built-in ones, so they can override them; the first entry
that matches wins. `{tag}` in an entry's env values and program argv is
replaced by the reference's tag (so kuard:blue reports "blue").

`container_argv` applies Kubernetes' rule: `command` replaces the entrypoint
and `args` replaces the cmd.

Images file format:

    images:
      - match: ["example.com/team/app:*", "app"]
        entrypoint: ["/app/server"]
        cmd: ["--port", "8080"]
        env: {MODE: demo}
        workdir: /app
        programs: {"/app/server": ["/usr/bin/python3", "/home/me/server.py"]}

Busybox-like images run the host's /bin/sh and coreutils (`ash` is mapped
to /bin/sh); the applets a host often lacks, nc, nslookup, ping and wget,
are stand-ins (demoapps/busybox.py) with busybox's flags and output, in
1.28's format for busybox:1.28 and older. Applets still missing: httpd,
telnet, traceroute, usleep.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import pathlib
import re
import sys
from typing import Any, Iterable, Mapping, Sequence

DEMOAPPS_DIR = pathlib.Path(__file__).resolve().parent / "demoapps"
HOST_SHELL = "/bin/sh"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_DOMAIN = "docker.io"
CATALOG_NAME = "kubemu catalog"
IMAGES_FILE_NAME = "images.yaml"

_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
                     r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$")


class InvalidReference(ValueError):
    """The image string is not a valid reference (Kubernetes: InvalidImageName)."""

    def __init__(self, image: str, reason: str):
        super().__init__(f"couldn't parse image reference {image!r}: "
                         f"invalid reference format: {reason}")
        self.image = image


class ImageNotFound(LookupError):
    """No catalog entry matches the reference (Kubernetes: ErrImagePull)."""

    def __init__(self, image: str):
        super().__init__(f"image not found in the {CATALOG_NAME}")
        self.image = image


class NoCommand(ValueError):
    """Neither the image nor the container says what to run."""

    def __init__(self, image: str):
        super().__init__(f"no command specified: image {image!r} has no entrypoint or cmd "
                         f"and the container sets neither command nor args")


class ImagesFileError(ValueError):
    """The images file is malformed; the message names the entry and field."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """A parsed, normalised image reference."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path


def parse_reference(image: str) -> Reference:
    """Docker's normalisation; an untagged, undigested reference means `latest`."""
    text = image.strip()
    if not text:
        raise InvalidReference(image, "empty image name")
    name, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidReference(image, f"invalid digest {digest!r}")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(image, f"invalid tag {tag!r}")
    domain, path = _split_domain(name)
    if not _DOMAIN.match(domain):
        raise InvalidReference(image, f"invalid registry {domain!r}")
    if path != path.lower():
        raise InvalidReference(image, "repository name must be lowercase")
    if not all(_PATH_COMPONENT.match(c) for c in path.split("/")):
        raise InvalidReference(image, f"invalid repository name {path!r}")
    if not tag and not digest:
        tag = "latest"
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


@dataclasses.dataclass(frozen=True)
class Pattern:
    """`repository[:tag]` with shell wildcards; no tag matches any tag."""

    repository: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> "Pattern":
        slash = text.rfind("/")
        colon = text.rfind(":")
        name, tag = (text[:colon], text[colon + 1:]) if colon > slash else (text, "*")
        domain, path = _split_domain(name)
        return cls(repository=f"{domain}/{path}", tag=tag or "*")

    def matches(self, ref: Reference) -> bool:
        if not fnmatch.fnmatchcase(ref.repository, self.repository):
            return False
        if not ref.tag:  # digest only: the tag is unknown
            return self.tag == "*"
        return fnmatch.fnmatchcase(ref.tag, self.tag)


@dataclasses.dataclass(frozen=True)
class ImageEntry:
    name: str
    patterns: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    # In-image program -> host argv. Bare names go on PATH, absolute paths
    # are rewritten when they are argv[0].
    programs: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    size_bytes: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(Pattern.parse(p) for p in self.patterns))

    def matches(self, ref: Reference) -> bool:
        return any(p.matches(ref) for p in self._compiled)  # type: ignore[attr-defined]

    def digest(self) -> str:
        """A stable content id: what the entry does, not where it came from."""
        body = json.dumps({"name": self.name, "entrypoint": self.entrypoint, "cmd": self.cmd,
                           "env": self.env, "workdir": self.workdir,
                           "programs": sorted(self.programs.items())}, sort_keys=True)
        return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class ResolvedImage:
    """An image reference bound to its catalog entry, `{tag}` substituted."""

    image: str               # as the user wrote it
    reference: Reference
    entry: ImageEntry
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    programs: Mapping[str, tuple[str, ...]]

    @property
    def id(self) -> str:
        return self.entry.digest()

    @property
    def image_ref(self) -> str:
        """What CRI calls the image ref: repository@digest."""
        return f"{self.reference.repository}@{self.id}"

    @property
    def repo_tag(self) -> str:
        return f"{self.reference.repository}:{self.reference.tag}" if self.reference.tag else ""


def container_argv(image: ResolvedImage, command: Sequence[str], args: Sequence[str]) -> list[str]:
    """Kubernetes: command replaces the entrypoint, args replace the cmd.

    neither -> entrypoint + cmd; only args -> entrypoint + args;
    only command -> command (the image cmd is dropped); both -> command + args.
    """
    if command:
        argv = [*command, *args]
    elif args:
        argv = [*image.entrypoint, *args]
    else:
        argv = [*image.entrypoint, *image.cmd]
    if not argv:
        raise NoCommand(image.image)
    return argv


class Catalog:
    """An ordered list of entries; the first that matches a reference wins."""

    def __init__(self, entries: Iterable[ImageEntry]):
        self.entries = tuple(entries)

    @classmethod
    def load(cls, images_file: str | os.PathLike | None = None) -> "Catalog":
        """User entries from `images_file` (if it exists) before the built-in ones."""
        user: list[ImageEntry] = []
        if images_file and pathlib.Path(images_file).exists():
            user = load_images_file(pathlib.Path(images_file))
        return cls([*user, *builtin_entries()])

    def lookup(self, image: str) -> tuple[Reference, ImageEntry]:
        ref = parse_reference(image)
        for entry in self.entries:
            if entry.matches(ref):
                return ref, entry
        raise ImageNotFound(image)

    def resolve(self, image: str) -> ResolvedImage:
        ref, entry = self.lookup(image)
        tag = ref.tag or "latest"

        def sub(text: str) -> str:
            return text.replace("{tag}", tag)

        return ResolvedImage(
            image=image, reference=ref, entry=entry,
            entrypoint=entry.entrypoint, cmd=entry.cmd,
            env=tuple((k, sub(v)) for k, v in entry.env), workdir=entry.workdir,
            programs={name: tuple(sub(a) for a in argv) for name, argv in entry.programs.items()})


def default_images_file() -> pathlib.Path:
    home = os.environ.get("KUBEMU_HOME") or os.path.expanduser("~/.kubemu")
    return pathlib.Path(home) / IMAGES_FILE_NAME


# ---------------------------------------------------------------- images file

def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImagesFileError(f"{where}: must be a list of strings")
    return tuple(value)


def entry_from_dict(data: Mapping[str, Any], where: str) -> ImageEntry:
    known = {"name", "match", "entrypoint", "cmd", "env", "workdir", "programs", "description"}
    if not isinstance(data, Mapping):
        raise ImagesFileError(f"{where}: must be a mapping")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ImagesFileError(f"{where}.{unknown[0]}: unknown field "
                              f"(known: {', '.join(sorted(known))})")
    patterns = _string_list(data.get("match"), f"{where}.match")
    if not patterns:
        raise ImagesFileError(f"{where}.match: required (one or more image patterns)")
    env = data.get("env") or {}
    if isinstance(env, Mapping):
        env_items = tuple((str(k), str(v)) for k, v in env.items())
    elif isinstance(env, list):
        env_items = []
        for i, item in enumerate(env):
            if not isinstance(item, Mapping) or "name" not in item:
                raise ImagesFileError(f"{where}.env[{i}]: must be {{name: ..., value: ...}}")
            env_items.append((str(item["name"]), str(item.get("value", ""))))
        env_items = tuple(env_items)
    else:
        raise ImagesFileError(f"{where}.env: must be a mapping or a list of name/value")
    programs_raw = data.get("programs") or {}
    if not isinstance(programs_raw, Mapping):
        raise ImagesFileError(f"{where}.programs: must be a mapping of program -> argv")
    programs = {}
    for name, argv in programs_raw.items():
        argv_t = _string_list(argv, f"{where}.programs[{name!r}]")
        if not argv_t:
            raise ImagesFileError(f"{where}.programs[{name!r}]: empty argv")
        programs[str(name)] = argv_t
    workdir = data.get("workdir") or ""
    if not isinstance(workdir, str):
        raise ImagesFileError(f"{where}.workdir: must be a string")
    return ImageEntry(
        name=str(data.get("name") or patterns[0]), patterns=patterns,
        entrypoint=_string_list(data.get("entrypoint"), f"{where}.entrypoint"),
        cmd=_string_list(data.get("cmd"), f"{where}.cmd"), env=env_items, workdir=workdir,
        programs=programs, description=str(data.get("description") or ""))


def load_images_file(path: pathlib.Path) -> list[ImageEntry]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ImagesFileError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, Mapping) or not isinstance(data.get("images", []), list):
        raise ImagesFileError(f"{path}: expected a mapping with a list under `images`")
    return [entry_from_dict(item, f"{path}: images[{i}]")
            for i, item in enumerate(data.get("images") or [])]


# ---------------------------------------------------------------- built-ins

def demoapp_argv(module: str, *extra: str) -> tuple[str, ...]:
    """A demo app run as a plain script: stdlib only (-S: no site-packages,
    -E: the pod's PYTHON* variables do not apply, -u: logs appear at once,
    -B: no __pycache__ written into the source tree)."""
    return (sys.executable, "-S", "-E", "-u", "-B", str(DEMOAPPS_DIR / f"{module}.py"), *extra)


def addon_argv(module: str) -> tuple[str, ...]:
    """A cluster add-on (addons/<module>): kubemu's own code with its dependencies,
    so site-packages stay on (-E: the pod's PYTHON* variables do not apply; -u:
    logs appear at once; -B: no __pycache__ written into the source tree)."""
    return (sys.executable, "-E", "-u", "-B", "-m", f"addons.{module}")


INGRESS_NGINX_PATTERNS = ("registry.k8s.io/ingress-nginx/controller",
                          "k8s.gcr.io/ingress-nginx/controller")


BUSYBOX_APPLETS = ("nc", "nslookup", "ping", "wget")
BUSYBOX_LEGACY_PATTERNS = (  # busybox before 1.29: nslookup through libc, the old format
    "busybox:1.1[0-9]*", "busybox:1.2[0-8]*", "registry.k8s.io/busybox", "k8s.gcr.io/busybox",
    "gcr.io/google-containers/busybox", "gcr.io/google_containers/busybox")


NGINX_SLIM_PATTERNS = ("registry.k8s.io/nginx-slim", "k8s.gcr.io/nginx-slim",
                       "gcr.io/google_containers/nginx-slim", "gcr.io/google-containers/nginx-slim")
BOOTCAMP_PATTERNS = ("gcr.io/google-samples/kubernetes-bootcamp", "jocatalin/kubernetes-bootcamp")
GB_FRONTEND_PATTERNS = ("gcr.io/google_samples/gb-frontend", "gcr.io/google-samples/gb-frontend",
                        "us-docker.pkg.dev/google-samples/containers/gke/gb-frontend")


def busybox_programs(style: str, *directories: str) -> dict[str, tuple[str, ...]]:
    """The busybox applets a host often lacks (demoapps/busybox.py), by bare
    name (on PATH) and at their paths in `directories`; `busybox APPLET`
    too. `style` is busybox.py's: the release or tool whose output it gives."""
    programs: dict[str, tuple[str, ...]] = {}
    for applet in BUSYBOX_APPLETS:
        argv = demoapp_argv("busybox", f"--kubemu-style={style}", applet)
        programs[applet] = argv
        for directory in directories:
            programs[f"{directory}/{applet}"] = argv
    multicall = demoapp_argv("busybox", f"--kubemu-style={style}")
    programs["busybox"] = programs["/bin/busybox"] = multicall
    return programs


def builtin_entries() -> list[ImageEntry]:
    python = (sys.executable,)
    shell_programs = {"ash": (HOST_SHELL,), "/bin/ash": (HOST_SHELL,)}
    alpine_programs = {**shell_programs, **busybox_programs("busybox", "/bin", "/usr/bin")}
    nginx = demoapp_argv("nginx")
    agnhost = demoapp_argv("agnhost")
    stress = demoapp_argv("stress")
    py_version = ".".join(map(str, sys.version_info[:3]))
    py_minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return [
        ImageEntry(
            name="busybox", patterns=BUSYBOX_LEGACY_PATTERNS, cmd=("sh",),
            programs={**shell_programs, **busybox_programs("busybox-1.28", "/bin")},
            size_bytes=1_146_369,
            description="the host's /bin/sh and coreutils; nc, nslookup (1.28's format), "
                        "ping, wget from demoapps/busybox.py"),
        ImageEntry(
            name="busybox", patterns=("busybox",), cmd=("sh",),
            programs={**shell_programs, **busybox_programs("busybox", "/bin")},
            size_bytes=4_261_550,
            description="the host's /bin/sh and coreutils; nc, nslookup, ping, wget "
                        "from demoapps/busybox.py"),
        ImageEntry(name="alpine", patterns=("alpine",), cmd=("/bin/sh",),
                   programs=alpine_programs, size_bytes=7_797_760,
                   description="the host's /bin/sh and coreutils; busybox's nc, nslookup, "
                               "ping, wget"),
        ImageEntry(name="ubuntu", patterns=("ubuntu",), cmd=("/bin/bash",), size_bytes=77_863_424,
                   description="the host's shell and coreutils"),
        ImageEntry(name="debian", patterns=("debian",), cmd=("bash",), size_bytes=124_000_000,
                   description="the host's shell and coreutils"),
        ImageEntry(
            name="python", patterns=("python",), cmd=("python3",),
            env=(("LANG", "C.UTF-8"), ("PYTHON_VERSION", py_version)),
            programs={"python": python, "python3": python, py_minor: python},
            size_bytes=1_020_000_000, description="this machine's Python interpreter"),
        ImageEntry(
            name="nginx", patterns=("nginx",), entrypoint=("/docker-entrypoint.sh",),
            cmd=("nginx", "-g", "daemon off;"), env=(("NGINX_VERSION", "1.25.3"),),
            programs={"/docker-entrypoint.sh": (HOST_SHELL, "-c", 'exec "$@"',
                                                "/docker-entrypoint.sh"),
                      "nginx": nginx, "/usr/sbin/nginx": nginx},
            size_bytes=187_000_000,
            description="static HTTP server on $POD_IP:80 ($NGINX_PORT) for "
                        "/usr/share/nginx/html (the welcome page while it does not exist)"),
        ImageEntry(
            # The StatefulSet tutorial's image: nginx without the official image's
            # entrypoint script; the same docroot and behaviour.
            name="nginx-slim", patterns=NGINX_SLIM_PATTERNS, cmd=("nginx", "-g", "daemon off;"),
            programs={"nginx": nginx, "/usr/sbin/nginx": nginx}, size_bytes=35_000_000,
            description="static HTTP server on $POD_IP:80 for /usr/share/nginx/html, as nginx"),
        ImageEntry(
            name="test-webserver", patterns=("k8s.gcr.io/test-webserver",
                                             "registry.k8s.io/test-webserver",
                                             "gcr.io/google_containers/test-webserver"),
            entrypoint=("/test-webserver",),
            programs={"/test-webserver": demoapp_argv("agnhost", "test-webserver")},
            size_bytes=4_500_000, description="file server for the container's / on port 80"),
        ImageEntry(
            # The cluster DNS add-on (deploy/addons/coredns.yaml): our server in
            # addons/dns, taking CoreDNS's -conf Corefile. It needs site-packages
            # (dnspython, grpc), so not demoapp_argv's -S.
            name="coredns", patterns=("registry.k8s.io/coredns/coredns", "registry.k8s.io/coredns",
                                      "k8s.gcr.io/coredns/coredns", "k8s.gcr.io/coredns",
                                      "coredns/coredns"),
            entrypoint=("/coredns",),
            programs={"/coredns": (sys.executable, "-E", "-u", "-B", "-m", "addons.dns")},
            size_bytes=16_000_000,
            description="cluster DNS for the cluster.local zone (addons.dns), CoreDNS's "
                        "-conf Corefile; health :8080, ready :8181, metrics :9153"),
        ImageEntry(
            name="pause", patterns=("registry.k8s.io/pause", "k8s.gcr.io/pause",
                                    "gcr.io/google_containers/pause"),
            entrypoint=("/pause",), programs={"/pause": demoapp_argv("pause")},
            size_bytes=711_000, description="sleeps until SIGTERM, then exits 0"),
        ImageEntry(
            name="liveness", patterns=("k8s.gcr.io/liveness", "registry.k8s.io/liveness"),
            programs={"/server": demoapp_argv("agnhost", "liveness")}, size_bytes=4_000_000,
            description="`/server`: /healthz on :8080, 200 for 10 s then 500"),
        ImageEntry(
            name="agnhost", patterns=("registry.k8s.io/e2e-test-images/agnhost",
                                      "k8s.gcr.io/e2e-test-images/agnhost",
                                      "gcr.io/kubernetes-e2e-test-images/agnhost"),
            entrypoint=("/agnhost",), cmd=("pause",),
            programs={"/agnhost": agnhost, **alpine_programs,
                      **{name: argv for name, argv in busybox_programs(
                          "bind", "/bin", "/usr/bin").items() if name.endswith("nslookup")}},
            size_bytes=50_000_000,
            description="subcommands liveness, netexec, serve-hostname, test-webserver, pause, "
                        "entrypoint-tester, mounttest, connect, porter, dns-suffix, "
                        "dns-server-list, etc-hosts"),
        ImageEntry(
            name="dnsutils", patterns=("registry.k8s.io/e2e-test-images/jessie-dnsutils",
                                       "k8s.gcr.io/e2e-test-images/jessie-dnsutils",
                                       "gcr.io/kubernetes-e2e-test-images/dnsutils",
                                       "gcr.io/kubernetes-e2e-test-images/jessie-dnsutils",
                                       "registry.k8s.io/e2e-test-images/dnsutils"),
            cmd=("bash",),
            programs={name: argv for name, argv in busybox_programs("bind", "/bin",
                                                                    "/usr/bin").items()
                      if name.endswith(("nslookup", "ping"))},
            size_bytes=133_000_000,
            description="the host's shell and coreutils; nslookup (bind's format), ping"),
        ImageEntry(
            name="stress", patterns=("polinux/stress",),
            # The image's CMD is written ['/usr/local/bin/stress'] (single quotes), which
            # Docker takes as a shell command: run without a command, it fails with 127.
            cmd=("/bin/sh", "-c", "['/usr/local/bin/stress']"),
            env=(("RELEASE_VERSION", "1.0.4"), ("SHELL", "/bin/bash")),
            programs={"stress": stress, "/usr/local/bin/stress": stress, **alpine_programs},
            size_bytes=9_740_000,
            description="stress 1.0.4: --cpu/--io/--vm/--hdd workers that really burn CPU "
                        "and hold memory"),
        ImageEntry(
            name="vish-stress", patterns=("vish/stress",),
            entrypoint=("/stress", "-logtostderr"),
            programs={"/stress": demoapp_argv("vish_stress")}, size_bytes=5_600_000,
            description="-cpus N burners, -mem-total allocated in -mem-alloc-size chunks"),
        ImageEntry(
            name="goproxy", patterns=("registry.k8s.io/goproxy", "k8s.gcr.io/goproxy",
                                      "gcr.io/google_containers/goproxy"),
            entrypoint=("/goproxy",), programs={"/goproxy": demoapp_argv("goproxy")},
            size_bytes=5_400_000, description="HTTP proxy on $POD_IP:8080"),
        ImageEntry(
            name="kuard", patterns=("gcr.io/kuar-demo/kuard-amd64", "gcr.io/kuar-demo/kuard-arm64",
                                    "gcr.io/kuar-demo/kuard"),
            cmd=("/kuard",), env=(("KUARD_VERSION", "{tag}"),),
            programs={"/kuard": demoapp_argv("kuard"), **shell_programs},
            size_bytes=24_000_000,
            description="the kuard demo app on $POD_IP:8080 (tags blue/green/purple/1/2/3)"),
        ImageEntry(
            # The HorizontalPodAutoscaler walkthrough's php-apache; CMD apache2-foreground.
            name="hpa-example", patterns=("registry.k8s.io/hpa-example", "k8s.gcr.io/hpa-example",
                                          "gcr.io/google_containers/hpa-example"),
            cmd=("apache2-foreground",),
            programs={"apache2-foreground": demoapp_argv("hpa_example"),
                      "/usr/local/bin/apache2-foreground": demoapp_argv("hpa_example"),
                      **shell_programs},
            size_bytes=481_000_000,
            description="php-apache on $POD_IP:80: every request burns ~0.1 s of CPU and "
                        "answers OK!"),
        ImageEntry(
            # The Kubernetes Basics tutorial's app; v1 on gcr.io, v2 on Docker Hub.
            name="kubernetes-bootcamp", patterns=BOOTCAMP_PATTERNS, cmd=("node", "server.js"),
            env=(("BOOTCAMP_VERSION", "{tag}"),),
            programs={"node": demoapp_argv("bootcamp"),
                      "/usr/local/bin/node": demoapp_argv("bootcamp")},
            size_bytes=211_000_000,
            description="`node server.js`: every request on $POD_IP:8080 answers "
                        "'Hello Kubernetes bootcamp! | Running on: HOSTNAME | v=N'"),
        ImageEntry(
            # The image's ENTRYPOINT is dumb-init (a PID 1 that forwards signals), its
            # CMD the controller; ingress-nginx's manifests repeat the controller's
            # path as args[0]. Both names run our controller, which skips a leading
            # "--" and its own path (addons/ingress/__main__.py).
            name="ingress-nginx-controller", patterns=INGRESS_NGINX_PATTERNS,
            entrypoint=("/usr/bin/dumb-init", "--"), cmd=("/nginx-ingress-controller",),
            programs={"/usr/bin/dumb-init": addon_argv("ingress"),
                      "dumb-init": addon_argv("ingress"),
                      "/nginx-ingress-controller": addon_argv("ingress"),
                      "nginx-ingress-controller": addon_argv("ingress")},
            size_bytes=285_000_000,
            description="the ingress controller add-on (python -m addons.ingress): an HTTP "
                        "reverse proxy for Ingresses of class nginx on $POD_IP:80, "
                        "/healthz on :10254; ingress-nginx's flags"),
        ImageEntry(
            name="gb-frontend", patterns=GB_FRONTEND_PATTERNS, cmd=("apache2-foreground",),
            workdir="/var/www/html",
            programs={"apache2-foreground": demoapp_argv("gb_frontend"),
                      "/usr/local/bin/apache2-foreground": demoapp_argv("gb_frontend")},
            size_bytes=130_000_000,
            description="the guestbook's frontend: a static Guestbook page on $POD_IP:80 "
                        "(no PHP, no Redis)"),
    ]
