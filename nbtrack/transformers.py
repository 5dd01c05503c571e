"""Hugging Face ``transformers.Trainer`` in a tracked cell:
``Trainer(..., callbacks=[nbtrack.transformers.Callback()])``.

Importing this module imports ``transformers``; ``import nbtrack`` does not. See
``nbtrack.integrations.transformers.Callback``.
"""

from __future__ import annotations

from nbtrack.integrations.transformers import Callback

__all__ = ["Callback"]
