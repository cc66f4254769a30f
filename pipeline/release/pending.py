"""A release a killed run left, as a dry run sees it: the real run first deals with it (see
recovery: undone when it stopped before its push; once its push may have started, finished,
pushed again or undone by what the remote holds), so a dry run asks the remote too, read-only,
and plans what the real run will do after that."""

from dataclasses import dataclass

from pipeline.paths import Workspace
from pipeline.release.git_repo import GitRepo
from pipeline.release.landing import PUSHING, ask_remote, landed, may_land
from pipeline.release.orphans import processes_of
from pipeline.release.steps import Journal

# What the real run does with it.
UNDO, FINISH, PUSH_AGAIN, ADOPT_OR_REFUSE, REFUSE = (
    "undo",
    "finish",
    "push again",
    "adopt or refuse",
    "refuse",
)


@dataclass(frozen=True)
class Pending:
    """The interrupted release, what the real run does with it, and its git processes alive."""

    journal: Journal
    outcome: str
    remote_refs: str  # what the remote named when asked ("" when it was not asked)
    running: int

    @classmethod
    def read(cls, repo: GitRepo, workspace: Workspace) -> "Pending | None":
        """The journal's release and the remote's answer (RemoteUnknown, a refusal, when the
        remote cannot be asked: the real run refuses the same way); None when there is none."""
        journal = Journal.load(workspace)
        if journal is None:
            return None
        running = len(processes_of([journal.run_id])) if journal.run_id else 0
        if journal.step not in PUSHING:
            return cls(journal, UNDO, "", running)
        refs = ask_remote(repo, journal)
        if landed(journal, refs):
            outcome = FINISH
        elif may_land(journal, refs):
            outcome = PUSH_AGAIN
        elif journal.tag and refs.tag and refs.tag != journal.commit:
            outcome = ADOPT_OR_REFUSE
        else:
            outcome = REFUSE
        return cls(journal, outcome, refs.describe(journal), running)

    @property
    def finishes_the_promote(self) -> bool:
        """The real run stops after dealing with this promote: it is on the remote then (or the
        run refuses); there is nothing else to do."""
        return self.outcome != UNDO and self.journal.action == "promote"

    @property
    def undone_tag(self) -> str | None:
        """The tag the real run deletes before it numbers its own release."""
        return self.journal.tag if self.outcome == UNDO else None

    @property
    def undone_paths(self) -> tuple[str, ...]:
        """What the real run puts back before it checks the working tree."""
        return tuple(self.journal.restore_paths) if self.outcome == UNDO else ()

    def in_words(self) -> str:
        journal = self.journal
        named = journal.tag or journal.branch
        what = f"the interrupted {journal.action} ({named}, step {journal.step!r})"
        now = ""
        if self.running:
            now = (
                f" ({self.running} process(es) of the killed run still run: the real run "
                "waits for them first (promote.orphan_wait_seconds), so its answer may differ)"
            )
        asked = f"{journal.remote} names {self.remote_refs}"
        if self.outcome == FINISH:
            return f"finish {what}, which {journal.remote} holds ({asked}){now}"
        if self.outcome == PUSH_AGAIN:
            return (
                f"push {what} again as the same commit, which {journal.remote} does not name yet "
                f"({asked}){now}"
            )
        if self.outcome == ADOPT_OR_REFUSE:
            return (
                f"adopt {journal.remote}'s {journal.tag} if it is this same release cut by "
                f"another run, else undo {what} and refuse ({asked}){now}"
            )
        if self.outcome == REFUSE:
            return f"undo {what} and refuse: it cannot land on {journal.remote} ({asked}){now}"
        return (
            f"undo {what}, which stopped before its push{now}: HEAD, the index"
            f"{', its tag' if journal.tag else ''} and {journal.release_path}/ as they were"
        )
