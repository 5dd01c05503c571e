"""What the tests share: real kernels and notebooks (``kernels``), real servers (``servers``),
JupyterLab in Chromium (``lab``) and hand-made records (``records``)."""
