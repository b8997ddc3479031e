"""Experiments: configs, the LOSO runner, launchers, SzCORE scoring and reports.
``python -m experiments run|sweep|aggregate|predict|list``. Kept free of heavy imports: every
SLURM job imports this package to unpickle its fold function."""
