"""The shared ending of every ``python -m recal.<tool>`` command.

A command's work either raises a :class:`UserError` — one ``error:`` line on stderr,
exit status 2, and an output folder it created but left empty is removed — or returns
its output folder: the command prints its main table (when it has one) and then, last,
the folder (SPEC §1).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from recal.analysis.runs import remove_if_empty
from recal.errors import UserError


def parse_command(parser: Any, args: Sequence[str] | None) -> Any:
    """Parse a command's arguments (jsonargparse), without jsonargparse's deprecation chatter."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="jsonargparse")
    return parser.parse_args(args)


def finish_command(work: Callable[[], Path], table: str | None = None, folder: Path | None = None) -> int:
    """Run ``work``; report a UserError in one line (exit 2) or print ``table`` and the folder (exit 0).

    ``folder`` is the output folder made before the work started, removed on error if empty.
    """
    try:
        out = work()
    except UserError as error:
        if folder is not None:
            remove_if_empty(folder)
        print(f"error: {error}", file=sys.stderr)
        return 2
    if table is not None:
        print((out / table).read_text())
    print(out)
    return 0
