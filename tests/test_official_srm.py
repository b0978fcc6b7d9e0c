"""One transcription of the official SRM layer (benchmarks/official_srm.py) serves the benchmarks and the tests.

A second copy could drift from the first: recal's SRM would then be timed against one
formulation and checked against another.
"""

from __future__ import annotations

import benchmarks.baselines as baselines
import benchmarks.bench_modules as bench_modules
import tests.layers.test_srm as srm_tests
from benchmarks.official_srm import OfficialSRM


def test_the_module_benchmark_and_the_srm_tests_use_the_one_transcription() -> None:
    assert bench_modules.OfficialSRM is OfficialSRM
    assert srm_tests.OfficialSRM is OfficialSRM
    assert not hasattr(baselines, "OfficialSRM")
