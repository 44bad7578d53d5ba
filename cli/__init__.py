"""The ``palm-bayes`` command line (installed as the ``palm_bayes_cli`` package): one module per command."""
