"""The command lines over :mod:`recal.analysis`: ``python -m recal.commands.<name>``.

Each module here reads its arguments and calls the library module of the same name
(``recal/commands/pruning.py`` calls ``recal/analysis/pruning.py``); the work itself —
computing, reading runs, writing tables and figures — lives in the library. The shared
argument parser and ending of every command is :mod:`recal.commands.parser`.
"""
