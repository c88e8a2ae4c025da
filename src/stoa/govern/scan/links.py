"""Which symlinks Stoa follows: one rule for the scanner, licence detection and pulls.

Hugging Face's cache stores every file of a snapshot as a relative link into the
repository's ``blobs/``, outside the snapshot folder, so refusing links refuses every
downloaded model. A link is followed only when it resolves to a regular file, since
that is what the blob store keeps and what a loader reads; a link to a folder, a
device, nothing or itself never is. Whether a target may lie outside the folder being
read is the policy's ``symlinks.allow_outside_root``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LinkKind = Literal["file", "folder", "special", "broken"]


@dataclass(frozen=True)
class Link:
    """Where one symlink leads, as seen from ``root`` (the folder being read)."""

    shown: str  # the target relative to root; the link's own text when it cannot be resolved
    kind: LinkKind
    target: Path | None  # the resolved target; None for a broken link
    inside: bool  # whether the target lies inside root
    problem: str | None  # why the link is never followed, in words that follow ``shown``

    def follows(self, allow_outside_root: bool) -> bool:
        """True when the target's content may be read in the link's place."""
        return self.kind == "file" and (self.inside or allow_outside_root)

    def says(self, name: str) -> str:
        """``<name> is a symlink to <target>``, and why it is not followed when it never is."""
        return f"{name} is a symlink to {self.shown}{self.problem or ''}"


def inspect_link(link: Path, root: Path) -> Link:
    """Resolve ``link`` (which must be a symlink) and judge it against ``root``."""
    base = os.path.realpath(root)
    try:
        target = os.path.realpath(link, strict=True)
        mode = os.stat(target).st_mode
    except OSError as exc:  # dangling, a loop, or unreadable
        return Link(os.readlink(link), "broken", None, False,
                    f" that cannot be followed ({exc.strerror})")  # fmt: skip
    shown = os.path.relpath(target, base)
    inside = os.path.commonpath([target, base]) == base
    if stat.S_ISREG(mode):
        return Link(shown, "file", Path(target), inside, None)
    kind: LinkKind = "folder" if stat.S_ISDIR(mode) else "special"
    what = "a folder" if kind == "folder" else "not a regular file"
    problem = f", which is {what}; only links to regular files are followed"
    return Link(shown, kind, Path(target), inside, problem)
