"""Start a stand-in server module in its own process and read the address it announces."""

from __future__ import annotations

import subprocess
import sys


def spawn_announcing(
    module: str, args: list[str], scheme: str, what: str
) -> tuple[subprocess.Popen[str], str]:
    """Run `python -m module --port 0 ARGS`; its first stdout line is its URL (`scheme://...`).

    The servers print their URL once they listen, so the caller can use it at once.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith(f"{scheme}://"):
        proc.kill()
        raise RuntimeError(f"the {what} did not start")
    return proc, url
