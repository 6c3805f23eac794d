"""The runtime's CPU rate (kubelet/runtime/runtime.py Container.cpu_rate): the
average over the samples of the last window, and the span they cover, which
the metrics API reports as a metric's window."""
from __future__ import annotations

import types

import pytest

from kubelet.runtime.runtime import Container


@pytest.mark.parametrize("samples, window_s, wanted", [
    ([], 10.0, (0, 0.0)),
    ([(5.0, 1_000)], 10.0, (0, 0.0)),
    ([(0.0, 0), (2.0, 1_000_000_000)], 10.0, (500_000_000, 2.0)),
    # Only the samples within the window count: from t=14 to t=20.
    ([(0.0, 0), (10.0, 9_000_000_000), (14.0, 9_000_000_000), (20.0, 12_000_000_000)],
     6.0, (500_000_000, 6.0)),
], ids=["no-samples", "one-sample", "two-samples", "window-cuts-older-samples"])
def test_cpu_rate_and_its_span(samples, window_s, wanted):
    container = types.SimpleNamespace(cpu_samples=samples)
    assert Container.cpu_rate(container, window_s) == wanted
