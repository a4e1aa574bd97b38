"""JupyterHub's entry point: ``jupyterhub -f enclave/hub/jupyterhub_config.py``.

Reads the enclave's settings (``ENCLAVE_*``, ``ENCLAVE_CONFIG``) and the hub's options
(``ENCLAVE_HUB_*``) once, at start-up, and sets JupyterHub's traits from them.
"""

from enclave.hub.config import HubOptions, configure, prepare_dirs
from enclave.settings import Settings

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (injected by traitlets)
settings = Settings.load()
options = HubOptions.load()
prepare_dirs(settings, options)
configure(c, settings, options)
