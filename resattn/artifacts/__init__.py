"""What a run writes: atomic files, metrics.json and results tables, plots, loggers, hyperparameter records."""
