"""Make the next group that reads a file pay for it, and size workers against a budget."""

import importlib.metadata
import math
import os
from pathlib import Path


def workers_that_fit(
    per_worker_mb: float, fixed_mb: float, budget_mb: float, headroom: float = 0.9
) -> int:
    """How many workers of `per_worker_mb` fit beside `fixed_mb` in `headroom` of the budget."""
    if per_worker_mb <= 0:
        raise ValueError(f"per_worker_mb must be positive, not {per_worker_mb}")
    return max(0, math.floor((budget_mb * headroom - fixed_mb) / per_worker_mb))


def evict_from_page_cache(*paths: Path) -> None:
    """Drop the files' pages from the page cache, so the next group to read them pays for them.

    The kernel charges a cached page to the group that first read it, not to later readers:
    a model that convert and parity just wrote and read is already cached, so a service that
    mmaps it would be charged nothing, where on a fresh host it is charged in full. Dirty
    pages are written first (only clean ones can go). A no-op where the filesystem keeps
    files in memory (tmpfs). A folder stands for the files in it; a missing path is skipped.
    """
    files = [f for p in paths if p.is_dir() for f in sorted(p.iterdir()) if f.is_file()]
    for path in files + [p for p in paths if p.is_file()]:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def distribution_libraries(*distribution_names: str) -> list[Path]:
    """The shared libraries of those Python distributions that are installed, not imported.

    For evict_from_page_cache: a library this process has imported is mapped, and a mapped
    page cannot be evicted.
    """
    libraries = []
    for name in distribution_names:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        libraries += [Path(f.locate()) for f in files if f.suffix == ".so" or ".so." in f.name]
    return libraries
