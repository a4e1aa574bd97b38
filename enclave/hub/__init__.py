"""The researchers' sessions: JupyterHub with one sandboxed server per (user, project).

``policy`` asks the control plane who may start which session with which data and limits;
``spawner`` (with ``sandbox``, ``cgroups`` and ``accounts``) runs the server under bubblewrap
with no network; ``config`` sets JupyterHub's traits from the enclave's settings;
``kube`` maps the same policy decision onto a KubeSpawner pod.
"""
