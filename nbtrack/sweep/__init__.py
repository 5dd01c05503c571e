"""Sweeps: ``%%track --sweep NAME=SPEC ...`` runs a cell once per trial, each trial a child run
of one parent run, searched with Optuna.

- ``space``: what a ``--sweep`` spec means (a list of values, or a range);
- ``plan``: the sweep's options, checked once;
- ``substitute``: a trial's code, the cell with the trial's values in its literal assignments;
- ``study``: the Optuna study (in memory, or shared by kernels through a storage);
- ``runner``: the parent run, each trial's run, interrupts and failures;
- ``pruning``: stopping a trial from the values it logs; ``outcome``: how a trial went;
- ``state``: the trials as the sweep's record shows them, live and saved.
"""
