"""The run's journal: how logged data becomes durable, and how it reaches MLflow.

The kernel appends every batch to a write-ahead journal file before anything else sees it
(``writer``, in the kernel), in a format of its own (``format``), in private folders
(``folders``). A separate sync process per kernel (``worker``) uploads it (``upload``), paced
while a cell runs (``pacer``), and survives the kernel. ``nbtrack sync`` (``replay``) uploads
what dead kernels left behind.
"""
