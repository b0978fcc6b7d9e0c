"""A config class whose optional package is missing stops with one line naming the extra that installs it."""

from __future__ import annotations

import pytest

from recal.cli import find_user_error


@pytest.mark.parametrize("package, extra", [("pycocotools", "detection"), ("tensorboard", "tensorboard"),
                                            ("timm", "timm"), ("onnx", "export")])
def test_a_missing_optional_package_names_its_extra(package: str, extra: str) -> None:
    error = find_user_error(ValueError("could not instantiate").with_traceback(None))
    assert error is None  # nothing of the user's behind a plain error
    wrapped = ValueError("could not instantiate")
    wrapped.__cause__ = ModuleNotFoundError(f"No module named '{package}'", name=package)
    line = str(find_user_error(wrapped))
    assert line.startswith(f"No module named '{package}'") and line.endswith(f"pip install -e '.[{extra}]'")
    assert "\n" not in line


def test_an_unknown_missing_package_gets_no_made_up_extra() -> None:
    wrapped = ValueError("could not instantiate")
    wrapped.__cause__ = ModuleNotFoundError("No module named 'something_else'", name="something_else")
    assert "pip install" not in str(find_user_error(wrapped))
