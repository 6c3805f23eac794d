"""examples/controller's test suite passes from a fresh virtualenv where kubemu
was installed with pip, not from the source tree (issue 13's first "Done means").

Offline and in a few seconds, as the checkout's own venv has everything:
- a wheel of kubemu is built from a copy of the checkout's packages (pip
  wheel --no-build-isolation, with the venv's setuptools; a copy, so no
  build/ directory is written into the checkout);
- a fresh venv (`python -m venv --without-pip`) gets the third-party
  dependencies through a .pth line naming the checkout venv's site-packages.
  A .pth line only appends that directory to sys.path: the .pth files inside
  it (the editable install of kubemu) are not run, so `import kubemu` finds
  the fresh venv's copy, which the test checks;
- pip (the checkout venv's, run by the fresh venv's python) installs the
  kubemu wheel and the example project, --no-deps --no-index;
- the example's tests/ and pyproject.toml (its pytest settings) are copied
  outside the checkout and run there with the fresh venv's python; etcd is
  the one the checkout resolves (KUBEMU_ETCD).
The run must pass with every collected test passed, nothing failed, errored
or skipped (the JUnit XML report and the summary line say so).
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET

import pytest

from deploy.components import find_etcd

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "controller"
# What the kubemu wheel is built from (pyproject.toml's packages, its readme).
PACKAGES = ("kubemu", "apiserver", "scheduler", "controller_manager", "kubelet", "kube_proxy",
            "addons", "deploy")
BUILD_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 300.0
# The test that the example's suite cannot be without (the issue names it).
KILL_TEST = "test_converges_although_the_apiserver_is_killed_mid_reconcile"
# The environment of the outer run that must not reach the inner one.
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "KUBEMU_HOME", "PYTEST_ADDOPTS",
               "PYTEST_PLUGINS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT",
               "PYTEST_CURRENT_TEST")


def run(argv: list[str], *, cwd: pathlib.Path, env: dict[str, str] | None = None,
        timeout_s: float = BUILD_TIMEOUT_S) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout_s, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (f"{' '.join(argv)} exited {result.returncode}:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def copy_tree(src: pathlib.Path, dst: pathlib.Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "*.egg-info", "build", ".pytest_cache"))


def build_kubemu_wheel(work: pathlib.Path) -> pathlib.Path:
    source = work / "kubemu-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in PACKAGES:
        copy_tree(REPO / package, source / package)
    wheels = work / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(wheels), str(source)], cwd=work)
    [wheel] = wheels.glob("kubemu-*.whl")
    return wheel


def fresh_venv(work: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """(its python, its site-packages); the checkout venv's packages via a .pth."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    site_packages = pathlib.Path(run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=work).stdout.strip())
    paths = sysconfig.get_paths()  # the checkout venv's (this interpreter's)
    lines = dict.fromkeys((paths["purelib"], paths["platlib"]))
    (site_packages / "zz-checkout-dependencies.pth").write_text("\n".join(lines) + "\n")
    return python, site_packages


def inner_env(python: pathlib.Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    # No directory of the checkout on PATH: its venv's bin has a `kubemu` of its own.
    path = [p for p in env.get("PATH", "").split(os.pathsep)
            if p and not pathlib.Path(p).resolve().is_relative_to(REPO)]
    env["PATH"] = os.pathsep.join([str(python.parent), *path])
    # The fresh venv has no etcd beside its python: the one this checkout uses.
    env["KUBEMU_ETCD"] = find_etcd()
    return env


def test_the_example_suite_passes_with_kubemu_installed_from_a_wheel(tmp_path):
    work = tmp_path
    assert not work.resolve().is_relative_to(REPO), "the run must be outside the checkout"
    wheel = build_kubemu_wheel(work)
    python, site_packages = fresh_venv(work)
    example = work / "example-src"
    copy_tree(EXAMPLE, example)
    env = inner_env(python)
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation",
         "-q", "--disable-pip-version-check", str(wheel), str(example)], cwd=work, env=env)

    # The tests and their settings, without the example's sources: what they
    # import must be what pip installed.
    suite = work / "suite"
    suite.mkdir()
    copy_tree(EXAMPLE / "tests", suite / "tests")
    shutil.copy2(EXAMPLE / "pyproject.toml", suite / "pyproject.toml")
    where = run([str(python), "-c", "import kubemu, kubemu.testing, deploy, echo_controller; "
                 "print(kubemu.__file__); print(kubemu.testing.__file__); "
                 "print(deploy.__file__); print(echo_controller.__file__)"],
                cwd=suite, env=env).stdout.split()
    for path in where:
        assert pathlib.Path(path).is_relative_to(site_packages), \
            f"{path} is not the fresh venv's copy (in {site_packages})"

    report = work / "junit.xml"
    result = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-rfEs",
         f"--basetemp={work / 'suite-tmp'}", f"--junitxml={report}", "tests"],
        cwd=suite, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output

    suite_counts = ET.parse(report).getroot().find("testsuite")
    assert suite_counts is not None, output
    counts = {k: int(suite_counts.get(k, "0")) for k in ("tests", "failures", "errors",
                                                          "skipped")}
    assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == \
        counts["skipped"] == 0, (counts, output)
    names = {case.get("name", "").split("[")[0] for case in suite_counts.iter("testcase")}
    assert KILL_TEST in names, (sorted(names), output)
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(rf"\b{counts['tests']} passed\b", summary), summary
    assert not re.search(r"\b(failed|error|errors|skipped|xfailed|xpassed)\b", summary), summary
