"""One thread, a fixed seed per test, and the parameter randomiser (tests/module_fixtures.py)."""

from tests.module_fixtures import _one_thread, _seed, randomize  # noqa: F401
