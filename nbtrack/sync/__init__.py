"""Getting a run's data into MLflow without the kernel paying for it, and without losing it.

The kernel appends every batch to a write-ahead *spool* file (``spool``); a separate sync
process (``worker``), one per kernel, uploads spools with MLflow's client and deletes them once
the store acknowledged everything. Spools left by dead kernels are replayed by ``replay``
(``nbtrack sync``) or by the next kernel's sync process.
"""
