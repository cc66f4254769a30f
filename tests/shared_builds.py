"""What one worker of a pytest-xdist run builds and every worker of the run reads.

`make test` runs the suite on several workers (TEST_WORKERS in the Makefile). A session
fixture that builds something expensive (a TensorFlow training, a gate run, a whole `dvc
repro`) builds it through `built_once`: the first worker that needs it builds it in the run's
shared temporary folder while the others wait, then every worker reads the same folder. A test
that changes what was built copies it first.
"""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` run by one worker of the run; every worker gets the finished folder.

    A build that failed leaves no marker, so the next worker to ask builds again (and fails
    the same way, with its own error) rather than reading half a folder.
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    folder, done = shared / f"shared-{name}", shared / f"shared-{name}.done"
    with FileLock(str(shared / f"shared-{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
