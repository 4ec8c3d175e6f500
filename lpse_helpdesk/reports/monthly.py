"""When the monthly recap is due: the previous month's, sent to the supervisors on the 1st.

Pure: the scheduler asks `due_monthly_period(now, last_sent, zone)` (say every hour) and
records `month_key(period)` once the recap went out. A service that was down on the 1st
sends it when it runs again later that month; with no record of any recap sent (a fresh
install) only the 1st counts, so an install on the 20th does not send last month's recap.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from lpse_helpdesk.reports.period import Period, local_today, previous_month

SEND_FROM = dt.time(7, 0)  # local time on the 1st
_KEY = re.compile(r"^\d{4}-\d{2}$")


def month_key(period: Period) -> str:
    """ "2026-11": what to store as the last month sent."""
    return f"{period.start:%Y-%m}"


def due_monthly_period(
    now: dt.datetime,
    last_sent: str | None,
    timezone: ZoneInfo,
    *,
    send_from: dt.time = SEND_FROM,
) -> Period | None:
    """The previous month when its recap is due now, else None."""
    if last_sent is not None and not _KEY.match(last_sent):
        raise ValueError(f"last_sent must look like 2026-11, not {last_sent!r}")
    local = now.astimezone(timezone)
    if local.day == 1 and local.time() < send_from:
        return None
    period = previous_month(local_today(now, timezone), timezone)
    if last_sent is None:
        return period if local.day == 1 else None
    return period if last_sent < month_key(period) else None


def next_monthly_run(
    now: dt.datetime, timezone: ZoneInfo, *, send_from: dt.time = SEND_FROM
) -> dt.datetime:
    """The next 1st of a month at `send_from` local time after `now`, in UTC."""
    local = now.astimezone(timezone)
    candidate = dt.datetime.combine(local.date().replace(day=1), send_from, timezone)
    if candidate <= local:
        first_next = (local.date().replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        candidate = dt.datetime.combine(first_next, send_from, timezone)
    return candidate.astimezone(dt.UTC)
