"""PyTorch Lightning in a tracked cell: ``Trainer(logger=nbtrack.lightning.Logger())``.

Importing this module imports Lightning; ``import nbtrack`` does not. See
``nbtrack.integrations.lightning.Logger``.
"""

from __future__ import annotations

from nbtrack.integrations.lightning import Logger

__all__ = ["Logger"]
