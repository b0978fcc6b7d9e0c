"""recal's analysis library: complexity, sweeps, DTD folds, channel pruning by gate, gate statistics, style transfer.

One module per subject computes, reads runs and writes tables and figures (complexity,
golden_numbers, paper_numbers, sweep, folds, pruning, gates, style_compare; runs, tables,
plots and validation serve them). The command line of each subject is
``python -m recal.commands.<name>`` (:mod:`recal.commands`), which only reads its arguments
and calls the module of the same name here.
"""
