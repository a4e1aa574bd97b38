"""``enclave up``: the whole enclave on one machine under one data directory.

``plan`` is pure (paths, the hub's environment, what is missing, what to print);
``provision`` sets up the control plane's demo people; ``session_env`` builds the sessions'
Python environment; ``stack`` runs the processes; ``queue_service`` is the review queue as a
JupyterHub service. ``run.up`` ties them together.
"""
