"""Short parser errors: one line naming the bad key, the bad value and what was expected.

jsonargparse reports a bad value deep inside a subclass config as a nested tree
of "Does not validate against any of the Union subtypes" blocks, preceded by a
usage text of several hundred lines. A user needs the leaf: which key, which
value, what is allowed. :func:`summarize` extracts it; when it cannot, the
original message is kept whole.
"""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from lightning.pytorch.cli import LightningArgumentParser

from recal.numeric_unions import install as install_int_before_float

# Every recal parser (cli.py's and the commands') is built from this module: from here on
# jsonargparse reads an int as an int in Union[int, float] options (limit_val_batches: 1),
# whatever else the process imported first.
install_int_before_float()

_KEY = re.compile(r'Parser key "([^"]+)"')
_EXPECTED = re.compile(r"Expected an? (.+?)(?:\. Got value: (.+))?$")
_GIVEN = re.compile(r"^Given value: (.+)$")
_BOILERPLATE = re.compile(r"^(Parser key|Does not validate|Subtypes:|Errors:|Given value|Expected a <class 'NoneType'>|"
                          r"Problem with given class_path)")
_PLAIN = re.compile(r'(Key "[^"]+" is not expected.*|Option \'[^\']+\' is not accepted.*|No action for key "[^"]+".*|[Uu]nrecognized arguments:.*|'
                    r'.*does not accept nested key.*|Import path .* does not .*|.*is not a subclass of.*)')


def summarize(message: str) -> str:
    """The essential lines of a jsonargparse error message (or the message itself)."""
    lines = [line.strip(" -") for line in message.splitlines()]
    keys: list[str] = []
    for line in lines:
        match = _KEY.search(line)
        if match and match.group(1) not in keys:
            keys.append(match.group(1))
    given = next((m.group(1) for line in lines if (m := _GIVEN.match(line))), None)
    expected = []
    for line in lines:
        match = _EXPECTED.search(line)
        if match and "NoneType" not in match.group(1):
            allowed = re.sub(r"^typing\.Literal\[(.*)\]$", r"one of [\1]", match.group(1))
            allowed = re.sub(r"^<class '(.+)'>$", r"\1", allowed)
            expected.append(f"expected {allowed}, got {match.group(2) or given}")
    plain = [m.group(1) for line in lines if (m := _PLAIN.search(line))]
    # otherwise: the first line that is not part of jsonargparse's nesting boilerplate
    leaves = [line for line in lines if line and not _BOILERPLATE.match(line)]
    found = expected or plain or leaves[:1]
    if not found:
        return message.strip()
    key = ".".join(k.replace("init_args.", "") for k in keys)
    return (f"{key}: " if key else "") + "; ".join(dict.fromkeys(found))


class ConciseArgumentParser(LightningArgumentParser):
    """LightningArgumentParser whose errors are one short line and exit status 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            return super().error(message, ex)
        sys.stderr.write(f"error: {summarize(message)}\n(run `{self.prog.split()[0]} <subcommand> --help` for the options)\n")
        sys.exit(2)
