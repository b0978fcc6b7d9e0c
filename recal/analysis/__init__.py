"""Analyses of models and runs: complexity (parameters, multiply-adds), and later sweeps, pruning, gate statistics."""
