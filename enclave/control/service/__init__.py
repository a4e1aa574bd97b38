"""The control plane's service layer: the one place every governance rule is enforced.

Faces (CLI, admin web, JSON API, hub) call these modules and nothing below them. Each public
function takes a ``Context`` and, for actions on behalf of a person, the actor's email; it runs
one transaction, appends its audit event in that transaction, and returns frozen views.
Refusals raise ``ControlError`` subclasses and are audited too.

Modules: ``people``, ``tokens``, ``projects``, ``members``, ``datasets``, ``grants``,
``access``, ``register``, ``auditlog``.
"""
