"""Demo apps that stand in for well-known images (see kubelet/runtime/images.py).

Each module is a plain stdlib script, run by the runtime as
`python -S -E -u <module file> ...`; none imports anything outside the stdlib
and this package's `_base`.
"""
