"""``--before REF``: the code of an earlier commit, run side by side with the working tree's.

The commit is checked out into the run's work directory (``git worktree add --detach``, removed at the
end). Its processes are started from the same interpreter and virtual environment with ``PYTHONPATH``
pointing at its ``src``, which comes before the editable install on ``sys.path``: the same machine, the
same dependencies, the same moment, only hookline's code differs. A commit whose dependencies differ
from the installed ones is not a fair baseline; the run says which commit it was, not what it needed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Before:
    commit: str  # the short hash, as the figures name it
    checkout: Path

    @property
    def env(self) -> dict[str, str]:
        """What a deployment of the earlier code adds to its processes' environment."""
        return {"PYTHONPATH": str(self.checkout / "src")}

    @property
    def label(self) -> str:
        return f"before {self.commit}"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def check_out(ref: str, workdir: Path) -> Before:
    """A checkout of ``ref`` under ``workdir``; raises RuntimeError with git's message if it fails."""
    commit = _git("rev-parse", "--short", f"{ref}^{{commit}}")
    checkout = workdir / f"before-{commit}"
    _git("worktree", "add", "--detach", str(checkout), commit)
    return Before(commit, checkout)


def remove(before: Before) -> None:
    """The checkout gone, and git's record of it (best effort: the run's clean-up must not fail)."""
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before.checkout)],
        capture_output=True,
        check=False,
    )
    subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True, check=False)
