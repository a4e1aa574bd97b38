"""The Justice-Data-Lab-style impact evaluation (spec section 8), as pure functions.

Arrays and frames in, frozen results out: no I/O, no globals. ``evaluate.evaluate`` ties the
steps together; the service and report layers call it and present the ``Evaluation``.
"""
