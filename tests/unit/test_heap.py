"""``release_freed_memory``: the heap's free pages go back to the OS (glibc's malloc_trim)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nn_tracing.heap import release_freed_memory

# A heap full of holes: 200 MiB of 4 KiB blocks (under glibc's mmap threshold, so in the
# heap), all freed but every 64th, which pins the heap's top so that free() cannot shrink it.
CHILD = textwrap.dedent(
    """
    import json
    import numpy as np
    from nn_tracing.heap import release_freed_memory

    def rss():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096

    blocks = [np.ones(1024, dtype=np.float32) for _ in range(51_200)]
    kept = blocks[::64]
    del blocks
    before = rss()
    released = release_freed_memory()
    print(json.dumps({"released": released, "before": before, "after": rss()}))
    """
)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/proc/self/statm").exists(),
    reason="glibc's malloc_trim and /proc: Linux only",
)
def test_freed_heap_pages_go_back_to_the_os():
    import json

    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["released"] is True
    assert figures["before"] - figures["after"] > 150 * 2**20, figures


def test_it_is_safe_to_call_at_any_time():
    assert release_freed_memory() in (True, False)
    assert release_freed_memory() in (True, False)  # nothing left to give: still fine
