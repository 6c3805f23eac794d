"""The image catalog: reference normalisation, matching, Kubernetes command/args rules."""
from __future__ import annotations

import pathlib
import sys

import pytest

from kubelet.runtime import images
from kubelet.runtime.images import (Catalog, ImageEntry, ImageNotFound, ImagesFileError,
                                    InvalidReference, NoCommand, container_argv,
                                    parse_reference)

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(images.builtin_entries())


@pytest.mark.parametrize("image, canonical", [
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.25", "docker.io/library/nginx:1.25"),
    ("docker.io/library/nginx:latest", "docker.io/library/nginx:latest"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx:latest"),
    ("library/nginx:1.7.9", "docker.io/library/nginx:1.7.9"),
    (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
    (f"nginx:1.25@{DIGEST}", f"docker.io/library/nginx:1.25@{DIGEST}"),
    ("kelseyhightower/helloworld:v1", "docker.io/kelseyhightower/helloworld:v1"),
    ("localhost:5000/app:2", "localhost:5000/app:2"),
    ("gcr.io/kuar-demo/kuard-amd64:blue", "gcr.io/kuar-demo/kuard-amd64:blue"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_references_are_normalised_like_docker(image, canonical):
    assert str(parse_reference(image)) == canonical


@pytest.mark.parametrize("image, reason", [
    ("Nginx", "repository name must be lowercase"),
    ("nginx:", "invalid tag"),
    ("nginx:bad!tag", "invalid tag"),
    ("nginx@sha256:xyz", "invalid digest"),
    ("", "empty image name"),
    ("a b", "invalid repository name"),
])
def test_invalid_references_are_rejected(image, reason):
    with pytest.raises(InvalidReference, match=reason):
        parse_reference(image)


@pytest.mark.parametrize("image, entry", [
    ("nginx", "nginx"),
    ("nginx:1.25", "nginx"),
    ("nginx:1.7.9", "nginx"),
    ("docker.io/library/nginx:latest", "nginx"),
    (f"nginx@{DIGEST}", "nginx"),
    ("busybox", "busybox"),
    ("busybox:1.28", "busybox"),
    ("registry.k8s.io/busybox", "busybox"),
    ("alpine:3.19", "alpine"),
    ("ubuntu:22.04", "ubuntu"),
    ("debian", "debian"),
    ("python", "python"),
    ("python:3.12-slim", "python"),
    ("registry.k8s.io/pause:3.9", "pause"),
    ("k8s.gcr.io/pause", "pause"),
    ("k8s.gcr.io/liveness", "liveness"),
    ("registry.k8s.io/e2e-test-images/agnhost:2.40", "agnhost"),
    ("gcr.io/kuar-demo/kuard-amd64:blue", "kuard"),
    ("gcr.io/kuar-demo/kuard-amd64:1", "kuard"),
    ("k8s.gcr.io/test-webserver", "test-webserver"),
    ("registry.k8s.io/ingress-nginx/controller:v1.10.1", "ingress-nginx-controller"),
    (f"registry.k8s.io/ingress-nginx/controller:v1.10.1@{DIGEST}", "ingress-nginx-controller"),
])
def test_catalog_resolves_known_images(catalog, image, entry):
    assert catalog.resolve(image).entry.name == entry


@pytest.mark.parametrize("image", [
    "foo:1",
    "docker.io/someone/nginx",          # not library/nginx
    "gcr.io/other/nginx:1",
    "localhost:5000/busybox",
    "gcr.io/kuar-demo/other-app:blue",
])
def test_unknown_images_are_not_found(catalog, image):
    with pytest.raises(ImageNotFound, match="image not found in the kubemu catalog") as err:
        catalog.resolve(image)
    assert err.value.image == image


ENTRY = ImageEntry(name="demo", patterns=("demo",), entrypoint=("/ep", "-x"), cmd=("c1", "c2"))
BARE = ImageEntry(name="bare", patterns=("bare",), cmd=("/kuard",))
NOTHING = ImageEntry(name="nothing", patterns=("nothing",))


@pytest.mark.parametrize("entry, command, args, argv", [
    (ENTRY, [], [], ["/ep", "-x", "c1", "c2"]),
    (ENTRY, [], ["a1"], ["/ep", "-x", "a1"]),
    (ENTRY, ["/bin/cmd"], [], ["/bin/cmd"]),
    (ENTRY, ["/bin/cmd", "-v"], ["a1", "a2"], ["/bin/cmd", "-v", "a1", "a2"]),
    # kuard's image has a cmd, not an entrypoint: args alone replace the program
    # itself, which is why the books add `command: ["/kuard"]`.
    (BARE, [], ["--keygen-enable"], ["--keygen-enable"]),
    (BARE, ["/kuard"], ["--keygen-enable"], ["/kuard", "--keygen-enable"]),
    (NOTHING, [], ["/server"], ["/server"]),
], ids=["neither", "only-args", "only-command-drops-cmd", "both", "args-replace-cmd-only",
        "command-and-args", "no-image-defaults"])
def test_command_replaces_entrypoint_and_args_replace_cmd(entry, command, args, argv):
    resolved = Catalog([entry]).resolve(entry.patterns[0])
    assert container_argv(resolved, command, args) == argv


def test_nothing_to_run_is_an_error():
    resolved = Catalog([NOTHING]).resolve("nothing")
    with pytest.raises(NoCommand, match="no command specified"):
        container_argv(resolved, [], [])


@pytest.mark.parametrize("tag", ["blue", "green", "purple", "1"])
def test_kuard_reports_its_tag(catalog, tag):
    resolved = catalog.resolve(f"gcr.io/kuar-demo/kuard-amd64:{tag}")
    assert dict(resolved.env)["KUARD_VERSION"] == tag
    assert resolved.cmd == ("/kuard",)
    assert pathlib.Path(resolved.programs["/kuard"][-1]).is_file()


def test_python_image_runs_this_interpreter(catalog):
    resolved = catalog.resolve("python:3.11")
    assert resolved.programs["python"] == (sys.executable,)
    assert resolved.programs["python3"] == (sys.executable,)
    assert container_argv(resolved, [], []) == ["python3"]


def test_every_builtin_program_exists():
    for entry in images.builtin_entries():
        for name, argv in entry.programs.items():
            assert pathlib.Path(argv[0]).exists(), (entry.name, name, argv)
            scripts = [a for a in argv if a.endswith(".py")]
            assert all(pathlib.Path(s).is_file() for s in scripts), (entry.name, name, argv)


def test_ingress_nginx_runs_the_ingress_addon_as_its_manifests_call_it(catalog):
    resolved = catalog.resolve("registry.k8s.io/ingress-nginx/controller:v1.10.1")
    args = ["/nginx-ingress-controller", "--publish-service=ingress-nginx/ingress-nginx-controller",
            "--election-id=ingress-nginx-leader", "--controller-class=k8s.io/ingress-nginx",
            "--ingress-class=nginx"]
    argv = container_argv(resolved, [], args)
    assert argv == ["/usr/bin/dumb-init", "--", *args]
    assert resolved.programs[argv[0]] == (sys.executable, "-E", "-u", "-B", "-m",
                                          "addons.ingress")
    assert container_argv(resolved, [], []) == ["/usr/bin/dumb-init", "--",
                                                "/nginx-ingress-controller"]


def test_digest_only_reference_matches_only_any_tag_patterns():
    pinned = ImageEntry(name="pinned", patterns=("app:1.0",))
    anytag = ImageEntry(name="any", patterns=("app:*",))
    assert Catalog([pinned, anytag]).resolve(f"app@{DIGEST}").entry.name == "any"
    assert Catalog([pinned, anytag]).resolve("app:1.0").entry.name == "pinned"
    with pytest.raises(ImageNotFound):
        Catalog([pinned]).resolve(f"app@{DIGEST}")


def test_image_id_is_stable_and_differs_between_entries(catalog):
    assert catalog.resolve("nginx:1").id == catalog.resolve("nginx:2").id
    assert catalog.resolve("nginx").id != catalog.resolve("busybox").id
    assert catalog.resolve("nginx:1").image_ref.startswith("docker.io/library/nginx@sha256:")


def test_images_file_adds_entries_before_the_builtin_ones(tmp_path):
    path = tmp_path / "images.yaml"
    path.write_text("""
images:
  - match: ["example.com/team/app:*"]
    entrypoint: ["/app/server"]
    cmd: ["--port", "8080"]
    env: {MODE: demo}
    workdir: /app
    programs: {"/app/server": ["/usr/bin/env", "python3", "server.py"]}
  - name: my-nginx
    match: nginx:1.25
    cmd: [nginx]
""")
    catalog = Catalog.load(path)
    app = catalog.resolve("example.com/team/app:3")
    assert app.entry.name == "example.com/team/app:*"
    assert container_argv(app, [], []) == ["/app/server", "--port", "8080"]
    assert app.env == (("MODE", "demo"),) and app.workdir == "/app"
    assert app.programs["/app/server"] == ("/usr/bin/env", "python3", "server.py")
    assert catalog.resolve("nginx:1.25").entry.name == "my-nginx"
    assert catalog.resolve("nginx:1.24").entry.name == "nginx"


def test_missing_images_file_means_builtin_only(tmp_path):
    assert Catalog.load(tmp_path / "absent.yaml").resolve("busybox").entry.name == "busybox"


@pytest.mark.parametrize("body, message", [
    ("images: [{cmd: [x]}]", r"images\[0\]\.match: required"),
    ("images: [{match: a, command: [x]}]", r"images\[0\]\.command: unknown field"),
    ("images: [{match: a, cmd: 3}]", r"images\[0\]\.cmd: must be a list of strings"),
    ("images: [{match: a, programs: {x: []}}]", r"programs\['x'\]: empty argv"),
    ("images: {a: 1}", "expected a mapping with a list under `images`"),
    ("images: [", "not valid YAML"),
])
def test_malformed_images_file_names_the_field(tmp_path, body, message):
    path = tmp_path / "images.yaml"
    path.write_text(body)
    with pytest.raises(ImagesFileError, match=message):
        Catalog.load(path)


# ---------------------------------------------------------------- the stand-ins' entries

@pytest.mark.parametrize("image, entry", [
    ("polinux/stress", "stress"),
    ("polinux/stress:1.0.4", "stress"),
    ("docker.io/polinux/stress:latest", "stress"),
    ("vish/stress", "vish-stress"),
    ("registry.k8s.io/coredns/coredns:v1.11.1", "coredns"),
    ("coredns/coredns:1.11.1", "coredns"),
    ("registry.k8s.io/goproxy:0.1", "goproxy"),
    ("k8s.gcr.io/goproxy:0.1", "goproxy"),
    ("registry.k8s.io/e2e-test-images/jessie-dnsutils:1.3", "dnsutils"),
    ("gcr.io/kubernetes-e2e-test-images/dnsutils:1.3", "dnsutils"),
    ("registry.k8s.io/test-webserver", "test-webserver"),
    ("busybox:1.36", "busybox"),
    # The seed notes' tutorials.
    ("registry.k8s.io/nginx-slim:0.8", "nginx-slim"),
    ("k8s.gcr.io/nginx-slim:0.8", "nginx-slim"),
    ("gcr.io/google-samples/kubernetes-bootcamp:v1", "kubernetes-bootcamp"),
    ("jocatalin/kubernetes-bootcamp:v2", "kubernetes-bootcamp"),
    ("docker.io/jocatalin/kubernetes-bootcamp:v2", "kubernetes-bootcamp"),
    ("gcr.io/google_samples/gb-frontend:v3", "gb-frontend"),
    ("us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5", "gb-frontend"),
])
def test_catalog_resolves_the_docs_images(catalog, image, entry):
    assert catalog.resolve(image).entry.name == entry


def script_of(argv) -> str:
    return pathlib.Path([a for a in argv if a.endswith(".py")][0]).name


@pytest.mark.parametrize("image, command, args, argv, script", [
    # Assign memory resources: the container goes over its limit.
    ("polinux/stress", ["stress"], ["--vm", "1", "--vm-bytes", "150M", "--vm-hang", "1"],
     ["stress", "--vm", "1", "--vm-bytes", "150M", "--vm-hang", "1"], "stress.py"),
    # Assign CPU resources.
    ("vish/stress", [], ["-cpus", "2"], ["/stress", "-logtostderr", "-cpus", "2"],
     "vish_stress.py"),
    # Configure liveness, readiness and startup probes: the TCP example.
    ("registry.k8s.io/goproxy:0.1", [], [], ["/goproxy"], "goproxy.py"),
    # Hello Minikube.
    ("registry.k8s.io/e2e-test-images/agnhost:2.39", ["/agnhost", "netexec", "--http-port=8080"],
     [], ["/agnhost", "netexec", "--http-port=8080"], "agnhost.py"),
    ("registry.k8s.io/e2e-test-images/agnhost:2.40", [], ["liveness"], ["/agnhost", "liveness"],
     "agnhost.py"),
    ("k8s.gcr.io/liveness", [], ["/server"], ["/server"], "agnhost.py"),
    ("k8s.gcr.io/test-webserver", [], [], ["/test-webserver"], "agnhost.py"),
    # The StatefulSet tutorial: nginx-slim is nginx without the entrypoint script.
    ("registry.k8s.io/nginx-slim:0.8", [], [], ["nginx", "-g", "daemon off;"], "nginx.py"),
    # Kubernetes Basics: `kubectl create deployment kubernetes-bootcamp --image=...`.
    ("gcr.io/google-samples/kubernetes-bootcamp:v1", [], [], ["node", "server.js"],
     "bootcamp.py"),
    # The guestbook's frontend Deployment.
    ("gcr.io/google_samples/gb-frontend:v3", [], [], ["apache2-foreground"], "gb_frontend.py"),
], ids=["memory-limit", "cpu-limit", "tcp-probe", "hello-minikube", "http-liveness",
        "liveness-server", "test-webserver", "nginx-slim", "bootcamp", "gb-frontend"])
def test_docs_manifests_run_their_stand_ins(catalog, image, command, args, argv, script):
    resolved = catalog.resolve(image)
    assert container_argv(resolved, command, args) == argv
    assert script_of(resolved.programs[argv[0]]) == script


@pytest.mark.parametrize("tag", ["v1", "v2"])
def test_bootcamp_reports_its_tag(catalog, tag):
    resolved = catalog.resolve(f"gcr.io/google-samples/kubernetes-bootcamp:{tag}")
    assert dict(resolved.env)["BOOTCAMP_VERSION"] == tag


@pytest.mark.parametrize("image", ["mongo:3.4.1", "redis", "gcr.io/google_samples/gb-redisslave:v1"])
def test_databases_are_not_in_the_catalog(catalog, image):
    """Their wire protocols are not emulated: ErrImagePull says so at once."""
    with pytest.raises(ImageNotFound):
        catalog.resolve(image)


def test_polinux_stress_without_a_command_fails_as_its_quoted_cmd_does(catalog):
    # CMD ['/usr/local/bin/stress'] is not JSON: Docker runs it with sh -c.
    resolved = catalog.resolve("polinux/stress")
    assert container_argv(resolved, [], []) == ["/bin/sh", "-c", "['/usr/local/bin/stress']"]


@pytest.mark.parametrize("image, style", [
    ("busybox", "busybox"),
    ("busybox:1.36.1", "busybox"),
    ("busybox:1.29", "busybox"),
    ("busybox:1.28", "busybox-1.28"),
    ("busybox:1.28.4", "busybox-1.28"),
    ("busybox:1.27.2-uclibc", "busybox-1.28"),
    ("busybox:1.24", "busybox-1.28"),
    ("registry.k8s.io/busybox", "busybox-1.28"),
    ("alpine:3.19", "busybox"),
    ("polinux/stress", "busybox"),
    ("registry.k8s.io/e2e-test-images/agnhost:2.40", "bind"),
    ("registry.k8s.io/e2e-test-images/jessie-dnsutils:1.3", "bind"),
])
def test_nslookup_speaks_the_images_release(catalog, image, style):
    resolved = catalog.resolve(image)
    assert f"--kubemu-style={style}" in resolved.programs["nslookup"]


@pytest.mark.parametrize("image", ["busybox", "busybox:1.28", "alpine", "polinux/stress",
                                   "registry.k8s.io/e2e-test-images/agnhost"])
def test_busybox_like_images_have_the_applets_a_host_lacks(catalog, image):
    programs = catalog.resolve(image).programs
    for applet in images.BUSYBOX_APPLETS:
        assert script_of(programs[applet]) == "busybox.py"
        assert programs[applet][-1] == applet
        assert programs[f"/bin/{applet}"] == programs[applet]
    assert programs["ash"] == (images.HOST_SHELL,)


def test_the_two_busybox_entries_are_distinct_images(catalog):
    # The runtime keys an image's program directory by its id.
    assert catalog.resolve("busybox:1.28").id != catalog.resolve("busybox:1.36").id


# ---------------------------------------------------------------- the stand-ins' pure parts

@pytest.mark.parametrize("rootfs, path, where", [
    ("/r/c1/rootfs", "/usr/share/nginx/html", "/r/c1/rootfs/usr/share/nginx/html"),
    ("/r/c1/rootfs", "/", "/r/c1/rootfs"),
    ("/r/c1/rootfs", "/../../etc/shadow", "/r/c1/rootfs/etc/shadow"),
    ("/r/c1/rootfs", "etc/config/x", "/r/c1/rootfs/etc/config/x"),
    (None, "/usr/share/nginx/html", "/usr/share/nginx/html"),
    (None, "/pod-data/../index.html", "/index.html"),
    (None, "/", "/"),
], ids=["plain-mode", "plain-root", "plain-no-climbing", "plain-relative", "namespaces",
        "namespaces-normalised", "namespaces-root"])
def test_container_path(monkeypatch, rootfs, path, where):
    from kubelet.runtime.demoapps import _base

    if rootfs is None:
        monkeypatch.delenv("KUBEMU_ROOTFS", raising=False)
    else:
        monkeypatch.setenv("KUBEMU_ROOTFS", rootfs)
    assert str(_base.container_path(path)) == where


@pytest.mark.parametrize("text, value", [
    ("150M", 150 << 20), ("1G", 1 << 30), ("4k", 4096), ("100B", 100), ("4096", 4096),
    ("0x10", 16), ("010", 8),
])
def test_stress_sizes_are_powers_of_1024(text, value):
    from kubelet.runtime.demoapps import stress

    assert stress.atoll_b(text, stress.Log(), 0) == value


@pytest.mark.parametrize("text, seconds", [("10", 10), ("10s", 10), ("2m", 120), ("1h", 3600),
                                           ("1d", 86400)])
def test_stress_durations(text, seconds):
    from kubelet.runtime.demoapps import stress

    assert stress.atoll_s(text, stress.Log(), 0) == seconds


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (999, "999ns"), (1_500, "1.5µs"), (1_000_000, "1ms"), (10_500_000_000, "10.5s"),
    (61_000_000_000, "1m1s"), (3_723_000_000_000, "1h2m3s"),
])
def test_agnhost_prints_go_durations(ns, text):
    from kubelet.runtime.demoapps import agnhost

    assert agnhost.go_duration(ns) == text


@pytest.mark.parametrize("mode, text", [
    (0o100644, "-rw-r--r--"), (0o040777, "drwxrwxrwx"), (0o041777, "dtrwxrwxrwx"),
    (0o104755, "urwxr-xr-x"), (0o020666, "Dcrw-rw-rw-"),
])
def test_agnhost_prints_go_file_modes(mode, text):
    from kubelet.runtime.demoapps import agnhost

    assert agnhost.go_file_mode(mode) == text
