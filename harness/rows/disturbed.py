"""Whether a measured window was disturbed, in one definition: kept, marked, left out.

A window is disturbed when

- **busy**: other processes used more than the suite's `stable_max_other_cpu_pct` of
  the CPUs during it (`other_cpu_pct`, see `harness.measure.load`); known as soon as
  the window ends, or
- **outlier**: its energy per sample lies more than OUTLIER_SCALED_MADS scaled median
  absolute deviations from the median of its case's windows, on a log scale, and more
  than OUTLIER_MIN_PCT % away from that median. The median and MAD are
  robust where mean and standard deviation are not (Leys et al., "Detecting outliers:
  do not use standard deviation around the mean, use absolute deviation around the
  median", J. Exp. Social Psychology 49(4), 2013, who recommend 2.5 to 3 MADs); the
  scaled MAD (x 1.4826) estimates the standard deviation of normal values. The floor
  keeps steady windows (a MAD of a fraction of a percent) from being called outliers
  for differences no one could act on. It needs MIN_WINDOWS_FOR_OUTLIERS windows.

A disturbed window stays in measurements.csv (`disturbed` true, `disturbed_reason`),
is left out of every statistic, and the runner measures its round again. Outliers are
judged over all the windows of a case that were not busy, the ones judged outliers
before included, so that leaving outliers out never makes the rest look like outliers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

OUTLIER_SCALED_MADS = 3.0
MAD_TO_SD = 1.4826  # 1 / Phi^-1(3/4): the MAD of normal values x this = their std
OUTLIER_MIN_PCT = 5.0
MIN_WINDOWS_FOR_OUTLIERS = 5
BUSY = "busy:"  # how a busy window's reason begins


def busy_reason(other_cpu_pct: float | None, max_other_cpu_pct: float) -> str:
    """`busy: other processes used 48 % of the CPUs (above 25 %)`, or "" when not busy."""
    if other_cpu_pct is None or not other_cpu_pct > max_other_cpu_pct:
        return ""
    return (
        f"{BUSY} other processes used {other_cpu_pct:.0f} % of the CPUs "
        f"(above {max_other_cpu_pct:g} %)"
    )


def outlier_reasons(values: Mapping[str, float]) -> dict[str, str]:
    """label -> why, for the windows of one case that are outliers; values are energy
    per sample (J) of its windows. The median and MAD of all of them are the reference:
    with half the windows or more left alone, one far window cannot move them."""
    usable = {k: v for k, v in values.items() if v is not None and math.isfinite(v) and v > 0}
    if len(usable) < MIN_WINDOWS_FOR_OUTLIERS:
        return {}
    logs = {k: math.log(v) for k, v in usable.items()}
    median = statistics.median(logs.values())
    spread = MAD_TO_SD * statistics.median(abs(v - median) for v in logs.values())
    out = {}
    for label, own in logs.items():
        distance = abs(own - median)
        if distance > math.log1p(OUTLIER_MIN_PCT / 100) and distance > OUTLIER_SCALED_MADS * spread:
            pct = (math.exp(own - median) - 1) * 100
            scaled = f"{distance / spread:.1f} scaled MADs" if spread > 0 else "no spread"
            out[label] = (
                f"outlier: {pct:+.0f} % from the median of its case's windows "
                f"({scaled}, above {OUTLIER_SCALED_MADS:g})"
            )
    return out
