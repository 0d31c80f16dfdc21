"""Lag in seconds from high-watermark samples: KLE's interpolation with its known flaws fixed.

Every history is crafted by hand and every expected value is worked out in the test, so the
arithmetic can be checked without running anything.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from collectors.kafka.lag_time import LagTime, OffsetTimeTable

WEEK = 7 * 24 * 3600.0


def _table(*points: tuple[int, float], capacity: int = 60) -> OffsetTimeTable:
    table = OffsetTimeTable(capacity)
    for offset, t in points:
        table.add(offset, t)
    return table


def _exact(lag: LagTime, seconds: float, method: str) -> None:
    assert lag.method == method, lag
    assert lag.seconds == pytest.approx(seconds, rel=1e-12, abs=1e-9), lag
    assert lag.reason


# -- interpolation ----------------------------------------------------------------------------------


def test_interpolates_between_the_bracketing_samples():
    table = _table((0, 100.0), (100, 110.0), (300, 120.0))
    # 50 is halfway through 0..100, produced halfway through 100..110 -> t = 110 - 50 * 10 / 100 = 105.
    _exact(table.lag_time(50, now=130.0), 130.0 - 105.0, "interpolated")
    # 200 is in 100..300: t = 120 - (300 - 200) * 10 / 200 = 115.
    _exact(table.lag_time(200, now=130.0), 130.0 - 115.0, "interpolated")
    # 250: t = 120 - 50 * 10 / 200 = 117.5.
    _exact(table.lag_time(250, now=130.0), 130.0 - 117.5, "interpolated")
    # On a sample's offset the estimate is that sample's time.
    _exact(table.lag_time(100, now=130.0), 130.0 - 110.0, "interpolated")
    _exact(table.lag_time(0, now=130.0), 130.0 - 100.0, "interpolated")


def test_interpolation_uses_the_newest_pair_that_brackets_the_offset():
    # The watermark sat at 10 from t=1 to t=5, then reached 20 at t=6. Record 10 did not exist at t=5,
    # so the newest pair (10@5, 20@6) is the right one: t = 6 - 10 * 1 / 10 = 5, not 1 from (0@0, 10@1).
    table = _table((0, 0.0), (10, 1.0), (10, 3.0), (10, 5.0), (20, 6.0))
    assert len(table) == 4  # the flat stretch kept its first and latest point only
    _exact(table.lag_time(10, now=10.0), 10.0 - 5.0, "interpolated")
    # Below the flat stretch the older pair applies: t = 1 - (10 - 4) * 1 / 10 = 0.4.
    _exact(table.lag_time(4, now=10.0), 10.0 - 0.4, "interpolated")


def test_lag_is_non_increasing_as_the_consumer_advances():
    table = _table((0, 0.0), (40, 4.0), (40, 9.0), (50, 10.0), (90, 12.0), (90, 20.0), (100, 21.0))
    lags = [table.lag_time(c, now=30.0).seconds for c in range(0, 101)]
    assert all(math.isfinite(x) and x >= 0 for x in lags)
    assert all(a >= b for a, b in pairwise(lags))
    assert lags[-1] == 0.0


# -- caught up, unknown, too few points -------------------------------------------------------------


def test_caught_up_at_or_past_the_newest_watermark():
    table = _table((0, 0.0), (100, 10.0))
    _exact(table.lag_time(100, now=50.0), 0.0, "caught_up")
    # A commit ahead of the newest sample (e.g. this cycle's watermark read failed) is caught up too.
    _exact(table.lag_time(150, now=50.0), 0.0, "caught_up")


def test_empty_table_is_unknown_nan_not_zero():
    table = OffsetTimeTable()
    lag = table.lag_time(0, now=100.0)
    assert lag.method == "unknown"
    assert math.isnan(lag.seconds)
    assert len(table) == 0


def test_single_point_gives_a_lower_bound_from_its_time():
    table = _table((100, 50.0))
    # Record 40 existed when the watermark was 100 at t=50, so it is at least 80 - 50 = 30 s old.
    _exact(table.lag_time(40, now=80.0), 30.0, "lower_bound")
    assert "older than the oldest watermark sample" in table.lag_time(40, now=80.0).reason
    _exact(table.lag_time(100, now=80.0), 0.0, "caught_up")


# -- idle producer ------------------------------------------------------------------------------------


def test_flat_table_is_a_lower_bound_from_the_first_point_and_grows_with_now():
    table = _table((100, 10.0), (100, 20.0), (100, 30.0))
    assert len(table) == 2  # first and latest point of the flat stretch
    for now in (30.0, 100.0, 1000.0):
        lag = table.lag_time(40, now=now)
        assert math.isfinite(lag.seconds)  # KLE divided by zero here
        _exact(lag, now - 10.0, "lower_bound")
    _exact(table.lag_time(100, now=1000.0), 0.0, "caught_up")


def test_idle_producer_after_a_rise_keeps_the_lag_growing():
    # Produced 0..100 between t=0 and t=10, then idle; the samples at 20 and 30 are one flat stretch.
    table = _table((0, 0.0), (100, 10.0), (100, 20.0), (100, 30.0))
    assert len(table) == 3
    # Record 50 was produced at t = 10 - 50 * 10 / 100 = 5, and only gets older.
    _exact(table.lag_time(50, now=30.0), 25.0, "interpolated")
    _exact(table.lag_time(50, now=130.0), 125.0, "interpolated")
    table.add(100, 500.0)
    assert len(table) == 3
    _exact(table.lag_time(50, now=500.0), 495.0, "interpolated")
    _exact(table.lag_time(100, now=500.0), 0.0, "caught_up")


# -- recreated topic ----------------------------------------------------------------------------------


def test_watermark_going_backwards_resets_the_table():
    table = _table((0, 0.0), (500, 10.0), (1000, 20.0))
    table.add(5, 30.0)  # topic deleted and recreated: KLE rejected this point
    assert len(table) == 1
    _exact(table.lag_time(2, now=40.0), 40.0 - 30.0, "lower_bound")
    table.add(15, 40.0)
    assert len(table) == 2
    # Only the new log counts: t = 40 - (15 - 10) * 10 / 10 = 35.
    _exact(table.lag_time(10, now=40.0), 5.0, "interpolated")
    # A commit left over from the old topic is past the new watermark, like the offset lag (floored at 0).
    _exact(table.lag_time(800, now=40.0), 0.0, "caught_up")


# -- extrapolation ------------------------------------------------------------------------------------


def test_extrapolates_below_the_oldest_sample_within_bounds():
    table = _table((1000, 100.0), (2000, 110.0))  # 100 records/s
    # Record 500 is 500 records (5 s) before the oldest sample: age = (120 - 100) + 5 = 25.
    lag = table.lag_time(500, now=120.0)
    _exact(lag, 25.0, "extrapolated")
    assert lag.seconds >= 120.0 - 100.0


def test_extrapolation_uses_the_oldest_rise_not_an_idle_diluted_rate():
    # Flat start: the oldest rise is 1000@100 -> 2000@110 (100/s), not 1000@105 -> 2000@110 (200/s).
    table = _table((1000, 100.0), (1000, 105.0), (2000, 110.0))
    _exact(table.lag_time(500, now=120.0), 25.0, "extrapolated")
    # Idle newest stretch: KLE's oldest-to-newest rate would be 1000 / 900 per second (age 1350).
    table = _table((1000, 100.0), (2000, 110.0), (2000, 500.0), (2000, 1000.0))
    _exact(table.lag_time(500, now=1000.0), 900.0 + 5.0, "extrapolated")


def test_extrapolation_is_capped_at_ten_times_the_oldest_age():
    table = _table((1000, 100.0), (1010, 110.0))  # 1 record/s
    # now=120: the oldest sample is 20 s old, so extrapolated ages up to 200 s are believed.
    _exact(table.lag_time(820, now=120.0), 200.0, "extrapolated")  # 20 + 180
    _exact(table.lag_time(819, now=120.0), 20.0, "lower_bound")  # 20 + 181 > 200
    _exact(table.lag_time(0, now=120.0), 20.0, "lower_bound")  # KLE: 1020 s and rising without limit
    assert "older than the oldest watermark sample" in table.lag_time(0, now=120.0).reason


def test_extrapolation_is_capped_at_seven_days():
    table = _table((10**9, 0.0), (10**9 + 1000, 1000.0))  # 1 record/s
    # The oldest sample is 100,000 s old; 10x that (1,000,000 s) exceeds a week, so a week is the cap.
    now = 100_000.0
    _exact(table.lag_time(10**9 - int(WEEK - now), now=now), WEEK, "extrapolated")
    _exact(table.lag_time(10**9 - int(WEEK - now) - 1, now=now), now, "lower_bound")


# -- insertion rules ----------------------------------------------------------------------------------


def test_capacity_drops_the_oldest_points():
    table = _table((0, 0.0), (10, 5.0), (20, 6.0), (30, 7.0), capacity=3)
    assert len(table) == 3
    # (0, 0) is gone: record 5 is extrapolated from 10@5 -> 20@6 (10/s): age = (7 - 5) + 0.5 = 2.5.
    # With (0, 0) kept it would have been interpolated at t=2.5, age 4.5.
    _exact(table.lag_time(5, now=7.0), 2.5, "extrapolated")
    _exact(table.lag_time(15, now=7.0), 7.0 - 5.5, "interpolated")


def test_capacity_bounds_a_long_history_and_a_long_idle_stretch():
    table = OffsetTimeTable(capacity=5)
    for i in range(100):
        table.add(i * 10, float(i))
    assert len(table) == 5
    for i in range(100, 1000):
        table.add(990, float(i))  # idle producer: the flat stretch holds two points
    assert len(table) == 5
    # Oldest kept: 950@95 .. 990@99, then 990@999. Record 985: t = 99 - 5 * 1 / 10 = 98.5.
    _exact(table.lag_time(985, now=1000.0), 1000.0 - 98.5, "interpolated")


def test_capacity_below_two_is_rejected():
    with pytest.raises(ValueError):
        OffsetTimeTable(capacity=1)


def test_points_not_newer_than_the_last_are_ignored():
    table = _table((0, 10.0), (100, 20.0))
    table.add(200, 20.0)  # same time
    table.add(300, 15.0)  # older time
    table.add(50, 19.0)  # older time and lower offset: ignored, not a reset
    table.add(400, math.nan)
    assert len(table) == 2
    # Still the original two points: record 50 at t = 20 - 50 * 10 / 100 = 15.
    _exact(table.lag_time(50, now=30.0), 15.0, "interpolated")
    _exact(table.lag_time(100, now=30.0), 0.0, "caught_up")


def test_flat_stretch_overwrites_only_when_the_last_two_points_share_the_offset():
    table = _table((0, 0.0), (10, 1.0))
    table.add(10, 2.0)  # only one point before it shares offset 10: appended
    assert len(table) == 3
    table.add(10, 3.0)  # the last two points share offset 10: overwrites 10@2
    assert len(table) == 3
    # 10@1 is kept as the stretch's first point: record 5 at t = 1 - 5 * 1 / 10 = 0.5.
    _exact(table.lag_time(5, now=3.0), 2.5, "interpolated")


# -- never negative -----------------------------------------------------------------------------------


def test_lag_is_never_negative_under_clock_jitter():
    table = _table((0, 100.0), (100, 110.0))
    # Record 50 was produced at t=105; a `now` of 104 (clock stepped back) gives 0, not -1.
    _exact(table.lag_time(50, now=104.0), 0.0, "interpolated")
    # Lower bound from a point newer than now.
    _exact(_table((100, 50.0)).lag_time(0, now=40.0), 0.0, "lower_bound")
    _exact(table.lag_time(0, now=90.0), 0.0, "interpolated")
    # Extrapolation with now before the oldest sample: its age is 0, so every estimate is out of bounds.
    _exact(_table((100, 100.0), (200, 110.0)).lag_time(50, now=90.0), 0.0, "lower_bound")
