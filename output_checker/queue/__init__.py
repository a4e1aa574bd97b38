"""The output review queue (layer 2): the workflow by which human output checkers approve
outputs before they leave the enclave.

* ``workflow``: statuses, owners, phases and the transition table, votes and decisions (pure);
* ``permissions`` (role rules), ``policies`` (state rules), ``visibility`` (blinding), pure;
* ``service``: one function per intent, the only way in for faces;
* ``storage`` (content-addressed snapshots), ``bundles`` and ``watcher`` (outbox intake),
  ``release`` (the release worker), ``recheck`` (the server's own checks);
* ``models`` and ``db`` (schema and migrations in the control plane's database).

See ``docs/review-queue.md``.
"""
