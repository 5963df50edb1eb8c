from datetime import UTC, datetime, timedelta, timezone

import pytest

from lowcarb import InvalidInputError, ManualClock, SystemClock, ensure_utc, parse_time
from lowcarb.backends.toolkit import MAX_SPAN, ceil_time, check_range, floor_time, format_duration


def test_naive_datetime_rejected_with_hint():
    with pytest.raises(InvalidInputError, match="naive datetime"):
        ensure_utc(datetime(2024, 1, 1), "start")


def test_aware_datetime_converted():
    t = datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert ensure_utc(t) == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-06-01", datetime(2024, 6, 1, tzinfo=UTC)),
        ("2024-06-01T12:00", datetime(2024, 6, 1, 12, tzinfo=UTC)),
        ("2024-06-01T12:00Z", datetime(2024, 6, 1, 12, tzinfo=UTC)),
        ("2024-06-01T14:00+02:00", datetime(2024, 6, 1, 12, tzinfo=UTC)),
    ],
)
def test_text_without_offset_is_utc(text, expected):
    assert parse_time(text) == expected


def test_bad_text():
    with pytest.raises(InvalidInputError, match="ISO 8601"):
        parse_time("yesterday", "--start")


def test_durations():
    assert format_duration(timedelta(days=14)) == "14 d"
    assert format_duration(timedelta(hours=36)) == "36 h"
    assert format_duration(timedelta(minutes=90)) == "90 min"


def test_floor_time():
    t = datetime(2024, 1, 1, 10, 42, tzinfo=UTC)
    assert floor_time(t, timedelta(hours=1)) == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert floor_time(t, timedelta(minutes=15)) == datetime(2024, 1, 1, 10, 30, tzinfo=UTC)


def test_manual_clock():
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    clock.sleep(90)
    assert clock.now() == datetime(2024, 1, 1, 0, 1, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(InvalidInputError):
        ManualClock(datetime(2024, 1, 1))


async def _asleep(clock: ManualClock) -> None:
    await clock.asleep(3600)


def test_manual_clock_async():
    import asyncio

    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    asyncio.run(_asleep(clock))
    assert clock.now().hour == 1


def test_system_clock_is_aware():
    assert SystemClock().now().tzinfo is not None


def test_ceil_time():
    hour = timedelta(hours=1)
    on = datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert ceil_time(on, hour) == on
    assert ceil_time(on + timedelta(minutes=1), hour) == on + hour
    assert ceil_time(on + timedelta(minutes=40), timedelta(minutes=30)) == on + hour
    paris = timezone(timedelta(hours=2))
    assert ceil_time(datetime(2024, 6, 1, 12, 5, tzinfo=paris), hour) == on + hour
    with pytest.raises(InvalidInputError, match="naive"):
        ceil_time(datetime(2024, 6, 1), hour)


def test_check_range():
    start = datetime(2024, 6, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    end = start + timedelta(hours=3)
    assert check_range(start, end) == (start.astimezone(UTC), end.astimezone(UTC))
    with pytest.raises(InvalidInputError, match="before"):
        check_range(end, start)
    with pytest.raises(InvalidInputError, match="naive"):
        check_range(datetime(2024, 6, 1), end)
    with pytest.raises(InvalidInputError, match="maximum"):
        check_range(start, start + MAX_SPAN + timedelta(seconds=1))
