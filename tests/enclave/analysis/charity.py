"""Charity-panel data shaped like ACRO's ``test_data.dta`` (spec §12.5): six years, four grant
types with 15, 59, 71 and 8 charities each year, incomes with planted problems."""

from __future__ import annotations

import numpy as np
import pandas as pd

YEARS = (2010, 2011, 2012, 2013, 2014, 2015)
GRANT_COUNTS = {"G": 15, "N": 59, "R": 71, "R/G": 8}


def charity_panel(seed: int = 0) -> pd.DataFrame:
    """918 rows: ``charity_id``, ``year``, ``grant_type``, ``inc_grants``, ``inc_donations``,
    ``total_costs``, ``inc_activity``, ``survivor``.

    Planted: (2011, G) is dominated by one grant of 5,000,000 (NK fails); in (2012, N) the
    two largest grants are 1,000,000 and 950,000 with the rest tiny (the runner-up estimates
    the largest to within 10 %: p% fails); every R/G cell has 8 charities (threshold fails).
    """
    rng = np.random.default_rng(seed)
    rows = []
    charity = 0
    for year in YEARS:
        for grant_type, n in GRANT_COUNTS.items():
            for _ in range(n):
                rows.append((charity, year, grant_type))
                charity += 1
    frame = pd.DataFrame(rows, columns=["charity_id", "year", "grant_type"])
    n = len(frame)
    frame["inc_grants"] = np.round(rng.lognormal(10.0, 0.6, n), 0)
    frame["inc_donations"] = np.round(rng.lognormal(9.5, 0.8, n), 0)
    frame["total_costs"] = np.round(rng.lognormal(10.5, 0.5, n), 0)
    dominated = frame.index[(frame.year == 2011) & (frame.grant_type == "G")]
    frame.loc[dominated[0], "inc_grants"] = 5_000_000.0
    close = frame.index[(frame.year == 2012) & (frame.grant_type == "N")]
    frame.loc[close, "inc_grants"] = 10.0
    frame.loc[close[0], "inc_grants"] = 1_000_000.0
    frame.loc[close[1], "inc_grants"] = 950_000.0
    noise = rng.normal(0.0, 2_000.0, n)
    frame["inc_activity"] = np.round(
        0.8 * frame.inc_grants + 0.5 * frame.inc_donations + 0.3 * frame.total_costs + noise, 0
    )
    frame["survivor"] = np.where(rng.random(n) < 0.7, "Alive", "Dead")
    return frame
