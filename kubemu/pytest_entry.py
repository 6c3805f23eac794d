"""kubemu's pytest11 entry point: installing kubemu changes nothing in a test run.

It only adds the plugin's options (inert until the plugin is loaded) and
`--kubemu`, which loads the plugin (kubemu.testing) as `-p kubemu.testing` does.
"""
from __future__ import annotations

import pytest

from kubemu.pytest_options import add_options

PLUGIN = "kubemu.testing"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("kubemu").addoption(
        "--kubemu", action="store_true", default=False,
        help=f"load kubemu's fixtures (kubemu_cluster, kubemu_client, kubemu_namespace), "
             f"as -p {PLUGIN} does")
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("kubemu") and not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
