"""A release a killed run left, as a dry run sees it: the real run first finishes it (the remote
holds it) or undoes it (the remote does not), so a dry run asks the remote too, read-only, and
plans what the real run will do after that."""

from dataclasses import dataclass

from pipeline.paths import Workspace
from pipeline.release.git_repo import GitRepo
from pipeline.release.orphans import processes_of
from pipeline.release.recovery import remote_holds
from pipeline.release.steps import Journal


@dataclass(frozen=True)
class Pending:
    """The interrupted release, whether the remote holds it now, and its git processes alive."""

    journal: Journal
    landed: bool
    running: int

    @classmethod
    def read(cls, repo: GitRepo, workspace: Workspace) -> "Pending | None":
        """The journal's release and the remote's answer (RemoteUnknown, a refusal, when the
        remote cannot be asked: the real run refuses the same way); None when there is none."""
        journal = Journal.load(workspace)
        if journal is None:
            return None
        running = len(processes_of(journal.run_id)) if journal.run_id else 0
        return cls(journal, remote_holds(repo, journal), running)

    @property
    def finishes_the_promote(self) -> bool:
        """The real run finishes this promote and stops: there is nothing else to do."""
        return self.landed and self.journal.action == "promote"

    @property
    def undone_tag(self) -> str | None:
        """The tag the real run deletes before it numbers its own release."""
        return None if self.landed else self.journal.tag

    @property
    def undone_paths(self) -> tuple[str, ...]:
        """What the real run puts back before it checks the working tree."""
        return () if self.landed else tuple(self.journal.restore_paths)

    def in_words(self) -> str:
        journal = self.journal
        named = journal.tag or journal.branch
        what = f"the interrupted {journal.action} ({named}, step {journal.step!r})"
        now = ""
        if self.running:
            now = (
                f" ({self.running} git process(es) of the killed run still run: the real run "
                "waits for them first (promote.orphan_wait_seconds), so its answer may differ)"
            )
        if self.landed:
            return f"finish {what}, which {journal.remote} holds{now}"
        return (
            f"undo {what}, which {journal.remote} does not hold{now}: HEAD, the index"
            f"{', its tag' if journal.tag else ''} and {journal.release_path}/ as they were"
        )
