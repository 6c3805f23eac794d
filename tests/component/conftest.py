"""Short names for the component tests that run on their worker's shared
cluster (kubemu.testing's plugin; its shape, etcd + apiserver, is in
pyproject.toml), as tests/e2e/conftest.py names its own: `api` a client,
`ns` the test's namespace."""
from __future__ import annotations

import pytest


@pytest.fixture
def api(kubemu_client):
    """The plugin's kubemu_client: a Client of the test's kubemu cluster."""
    return kubemu_client


@pytest.fixture
def ns(kubemu_namespace):
    """The plugin's kubemu_namespace: created for the test, deleted after it."""
    return kubemu_namespace
