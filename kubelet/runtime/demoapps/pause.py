"""The pause image: sleep until a signal; SIGTERM or SIGINT exit 0."""
from __future__ import annotations

import signal
import sys


def main() -> None:
    def stop(_signum, _frame):
        sys.exit(0)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
