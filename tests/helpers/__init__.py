"""What the tests share: real kernels and notebooks (``kernels``), real servers (``servers``),
JupyterLab in Chromium (``lab``), hand-made records (``records``) and the pid of a process that
has ended (``processes``)."""
