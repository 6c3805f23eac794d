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
