"""Analyses of models and runs: complexity, sweeps, channel pruning by gate, gate statistics, plots.

Each analysis has a ``python -m recal.<tool>`` entry point (complexity, sweep, prune, gates)
that writes tables and figures under one output folder.
"""
