"""Datetime rules shared by every entry point.

The policy, applied consistently:

* Python ``datetime`` objects must be timezone-aware; naive ones are rejected with
  :class:`~lowcarb.exceptions.InvalidInputError`.
* Text (CLI flags, config values, file columns named ``*_utc`` or the data portal's
  ``Datetime (UTC)``) without an offset is read as UTC, because those inputs are UTC by
  definition. Text with an offset is converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from lowcarb.exceptions import InvalidInputError

__all__ = [
    "MAX_SPAN",
    "ceil_time",
    "check_range",
    "ensure_utc",
    "floor_time",
    "format_duration",
    "parse_time",
]

#: The longest range one history or forecast call may ask for; guards against typos
#: such as a start year of 1024 that would otherwise allocate millions of rows.
MAX_SPAN = timedelta(days=3 * 366 + 31)


def ensure_utc(value: datetime | pd.Timestamp, name: str = "time") -> datetime:
    """Return ``value`` converted to UTC, rejecting naive datetimes.

    Args:
        value: A timezone-aware datetime or pandas Timestamp.
        name: The argument's name, used in the error message.

    Raises:
        InvalidInputError: If ``value`` is naive or not a datetime.
    """
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise InvalidInputError(
            f"{name}={value.isoformat()} is a naive datetime; pass a timezone-aware one, "
            "e.g. datetime(2024, 1, 1, tzinfo=timezone.utc)"
        )
    return value.astimezone(UTC)


def parse_time(text: str, name: str = "time") -> datetime:
    """Parse ISO 8601 text into an aware UTC datetime; text without an offset is UTC.

    Args:
        text: e.g. ``2024-06-01``, ``2024-06-01T12:00``, ``2024-06-01T12:00:00+02:00``
            or ``2024-06-01T10:00Z``.
        name: The argument's name, used in the error message.

    Raises:
        InvalidInputError: If the text is not an ISO 8601 date or datetime.
    """
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{name}={text!r} is not an ISO 8601 date or time; use e.g. 2024-06-01T12:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def floor_time(when: datetime, resolution: timedelta) -> datetime:
    """Return the start of the ``resolution``-long interval that contains ``when``.

    Intervals are aligned to the Unix epoch, so hourly slots start on the hour.
    """
    when = ensure_utc(when, "when")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    steps = (when - epoch) // resolution
    return epoch + steps * resolution


def ceil_time(when: datetime, resolution: timedelta) -> datetime:
    """Return the first ``resolution``-long interval start at or after ``when``.

    ``when`` itself when it lies on the (epoch-aligned) grid, else the next interval's
    start: the first interval of a range that begins at ``when``.
    """
    floor = floor_time(when, resolution)
    return floor if floor == when else floor + resolution


def check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Check a ``[start, end)`` range and return it in UTC.

    Raises:
        InvalidInputError: If a bound is naive or not a datetime, ``start`` is not before
            ``end``, or the range is longer than :data:`MAX_SPAN`.
    """
    start = ensure_utc(start, "start")
    end = ensure_utc(end, "end")
    if start >= end:
        raise InvalidInputError(f"start {start.isoformat()} must be before end {end.isoformat()}")
    if end - start > MAX_SPAN:
        raise InvalidInputError(
            f"range {start.isoformat()} .. {end.isoformat()} is longer than the maximum "
            f"{MAX_SPAN.days} days; ask in pieces"
        )
    return start, end


def format_duration(delta: timedelta) -> str:
    """Format a duration for people: ``90 min``, ``36 h``, ``14 d``."""
    seconds = delta.total_seconds()
    if seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
