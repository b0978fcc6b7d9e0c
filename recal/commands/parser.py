"""The shared argument parser and ending of every ``python -m recal.commands.<name>`` command.

A command's arguments are read by a :class:`CommandParser`: a bad option is one ``error:``
line naming it, a hint, and exit status 2, like ``cli.py``'s. A command's work either
raises a :class:`UserError` — one ``error:`` line on stderr, exit status 2, and an output
folder it created but left empty is removed — or returns its output folder: the command
prints its main table (when it has one) and then, last, the folder.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Literal, NoReturn, Optional, Sequence

from jsonargparse import ArgumentParser

from recal.analysis.runs import output_dir, remove_if_empty
from recal.cli_errors import summarize
from recal.errors import UserError


class CommandParser(ArgumentParser):
    """jsonargparse ArgumentParser of a ``python -m recal.commands.<name>`` command: errors in one line, exit 2.

    An unknown option, a value of the wrong type or a missing required argument prints
    ``error: <what is wrong>`` and a hint where to find the options, instead of the usage
    text and jsonargparse's nested explanation.
    """

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print the one-line summary of ``message`` and the help hint; exit with status 2."""
        if not self.exit_on_error:
            return super().error(message, ex)
        sys.stderr.write(f"error: {self._as_option(summarize(message))}\n(run `{self.prog} --help` for the options)\n")
        sys.exit(2)

    def add_checkpoint_arguments(self, help: str, many: bool = True) -> None:
        """The arguments of every command that reads trained runs: the checkpoint(s), ``--config``, ``--which``."""
        if many:
            self.add_argument("checkpoints", nargs="+", type=str, help=help)
        else:
            self.add_argument("checkpoint", type=str, help=help)
        runs = "the runs' config, as for cli.py (default: config.yaml of each run)" if many else \
            "the run's config, as for cli.py (default: the run's config.yaml)"
        self.add_argument("--config", type=Optional[str], default=None, help=runs)
        self.add_argument("--which", type=Literal["best", "last"], default="best", help="checkpoint of a run folder")

    def _as_option(self, summary: str) -> str:
        """The summary with option names spelled as typed: ``--input_size: …``; positionals unchanged."""
        required = "the following arguments are required: "
        if summary.startswith(required):
            return required + ", ".join(self._spelling(name) for name in summary[len(required):].split(", "))
        key, sep, rest = summary.partition(": ")
        return f"{self._spelling(key)}: {rest}" if sep else summary

    def _spelling(self, dest: str) -> str:
        """``--dest`` when ``dest`` is an option of this parser, else ``dest`` itself."""
        option = f"--{dest}"
        return option if any(option in action.option_strings for action in self._actions) else dest


def split_passed_on(args: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """``args`` (default ``sys.argv[1:]``) cut at ``--``: the command's own, and those it passes to ``cli.py``."""
    argv = list(sys.argv[1:] if args is None else args)
    if "--" not in argv:
        return argv, []
    return argv[:argv.index("--")], argv[argv.index("--") + 1:]


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
        return report(error)
    if table is not None:
        print((out / table).read_text())
    print(out)
    return 0


def finish_in_folder(tool: str, out: str | None, work: Callable[[Path], Any], table: str | None = None) -> int:
    """Make the output folder (``out``, else ``runs/<tool>/<timestamp>``), run ``work(folder)`` in it, finish.

    A folder that cannot be created is reported like any other user error (exit 2).
    """
    try:
        folder = output_dir(tool, out)
    except UserError as error:
        return report(error)

    def work_in_folder() -> Path:
        work(folder)
        return folder
    return finish_command(work_in_folder, table, folder)


def report(error: UserError) -> int:
    """Print ``error`` as the one ``error:`` line on stderr; return the exit status 2."""
    print(f"error: {error}", file=sys.stderr)
    return 2
