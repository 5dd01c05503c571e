"""A tracked cell in the IPython kernel: its lifecycle (``cell``), the run it starts as data
(``run_data``), the params it captures (``params``), the code and environment it keeps
(``code``), what the kernel knows about its notebook (``context``), the cells being executed
(``executions``), what the sync process tells the kernel (``progress``) and the system metrics
the run shows (``system``).

The IPython wiring and the magics that call into it are one layer up, in ``nbtrack.shell``,
above ``nbtrack.sweep`` too (a sweep runs its trials through ``cell``).
"""
