"""Command-line entry points (train.py, eval.py), resume, sweep callbacks, and the one place errors become exit codes."""
