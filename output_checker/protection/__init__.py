"""Table protection: the table model, the LP audit and secondary cell suppression (spec §10).

``TableModel`` describes a table with totals and its additivity relations; ``audit`` gives the
attacker's interval for every suppressed cell; ``protect_exact`` finds the least-cost pattern
that gives every primary its protection interval, ``protect_heuristic`` a protecting one for
large tables (``protect`` picks by size). All of it is pure: no I/O, values unchanged.
"""

from output_checker.protection.audit import AuditResult, audit, singleton_scenarios
from output_checker.protection.exact import protect_exact
from output_checker.protection.heuristic import protect, protect_heuristic
from output_checker.protection.model import TableModel
from output_checker.protection.problem import pair_sums
from output_checker.protection.result import ProtectionResult, ScenarioAudit

__all__ = [
    "AuditResult",
    "ProtectionResult",
    "ScenarioAudit",
    "TableModel",
    "audit",
    "pair_sums",
    "protect",
    "protect_exact",
    "protect_heuristic",
    "singleton_scenarios",
]
