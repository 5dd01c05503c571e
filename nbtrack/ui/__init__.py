"""MLflow UIs for a notebook's store: started, found and stopped by ``process``, proven this
user's by ``ownership``, remembered by ``registry``, linked to by ``links``, and served through
Jupyter by ``proxy``.

``%track_ui``, ``nbtrack ui`` and the Jupyter server extension all go through ``process``, so a
store gets one UI however many kernels or pages ask for it.
"""
