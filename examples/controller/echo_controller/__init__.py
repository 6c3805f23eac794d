"""An example controller written on kubemu.client (informer, workqueue, one sync).

See echo_controller.controller for what it does; run it with
`python -m echo_controller --apiserver HOST:PORT` (or `--home DIR` for a
kubemu cluster's home).
"""
from __future__ import annotations

from echo_controller.controller import LABEL, LABEL_VALUE, SUFFIX, EchoController, echo_name

__all__ = ["LABEL", "LABEL_VALUE", "SUFFIX", "EchoController", "echo_name"]
