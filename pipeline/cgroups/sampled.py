"""No kernel limit (a laptop, an unprivileged container): the process tree's RSS, sampled."""

import contextlib
import threading

import psutil

from pipeline.cgroups.common import POLL_SECONDS
from pipeline.cgroups.group import ResourceGroup


class SampledGroup(ResourceGroup):
    """Processes run unconfined; the peak is the tree's RSS sampled at 20 Hz with psutil."""

    def __init__(
        self,
        limit_mb: float | None,
        name: str,
        term_grace_seconds: float,
        cpu_share: float | None = None,
    ) -> None:
        super().__init__(limit_mb, name, term_grace_seconds, cpu_share)
        if cpu_share is not None:
            self.cpu_note = "no cgroup here can hold a CPU quota"
        self._peak_bytes = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name=name, daemon=True)
        self._sampler.start()

    def _tree_rss(self) -> int:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                total += psutil.Process(pid).memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._peak_bytes = max(self._peak_bytes, self._tree_rss())

    def _read(self, what: str) -> int:
        if what == "usage":
            return self._tree_rss()
        if what == "peak":
            self._peak_bytes = max(self._peak_bytes, self._tree_rss())
            return self._peak_bytes
        return 0  # nothing counts OOM kills or limit hits when there is no limit

    def _remove(self) -> None:
        self._stop.set()
        self._sampler.join(timeout=1)
