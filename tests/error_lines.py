"""What a user error looks like on stderr: one ``error:`` line naming the bad value, no traceback."""

from __future__ import annotations


def the_error_line(stderr: str, *names: str) -> str:
    """The one ``error:`` line of ``stderr``, checked to name every one of ``names``."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]
