"""Burrow-style consumer status on crafted poll histories: every status, the transitions between them,
the slow- and idle-topic cases Burrow gets wrong, the window's bounds and the group roll-up."""

from __future__ import annotations

import dataclasses

import pytest

from collectors.kafka.status import Evaluation, PartitionHistory, Status, evaluate, group_status

CYCLE = 30.0


def _history(rows: list[tuple[float, int, int]], size: int = 10, min_distance: float = 0.0) -> PartitionHistory:
    history = PartitionHistory(size=size, min_distance=min_distance)
    _feed(history, rows)
    return history


def _feed(history: PartitionHistory, rows: list[tuple[float, int, int]]) -> None:
    for t, committed, hw in rows:
        history.observe(t, committed, hw)


def _polls(start: float, count: int, committed, hw) -> list[tuple[float, int, int]]:
    """`count` polls one CYCLE apart; committed and hw are constants or functions of the poll index."""
    at = lambda v, i: v(i) if callable(v) else v  # noqa: E731
    return [(start + i * CYCLE, at(committed, i), at(hw, i)) for i in range(count)]


# -- numbering and evidence thresholds ---------------------------------------------------------------


def test_status_codes_keep_burrows_numbering():
    assert [(s.name, int(s)) for s in Status] == [
        ("NOTFOUND", 0), ("OK", 1), ("WARN", 2), ("ERR", 3), ("STOP", 4), ("STALL", 5), ("REWIND", 6)]


def test_evaluation_is_immutable():
    evaluation = Evaluation(Status.OK, "fine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        evaluation.status = Status.ERR  # type: ignore[misc]


def test_never_observed_is_notfound_and_one_poll_is_not_enough():
    history = PartitionHistory()
    assert evaluate(history, 0.0, True) == Evaluation(Status.NOTFOUND, "no committed offset observed")
    history.observe(0.0, 100, 5_000)  # huge lag, but one poll shows no movement at all
    assert evaluate(history, 10_000.0, False) == Evaluation(Status.OK, "not enough commits observed yet")


def test_invalid_window_parameters_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        PartitionHistory(size=1)
    with pytest.raises(ValueError, match="negative"):
        PartitionHistory(min_distance=-1.0)


# -- OK ------------------------------------------------------------------------------------------------


def test_caught_up_consumer_is_ok_however_long_its_offset_sits_still():
    history = _history(_polls(0.0, 100, 500, 500))  # 50 min without moving, nothing to consume
    assert evaluate(history, 3_000.0, False) == Evaluation(Status.OK, "caught up: lag 0 (allowed 0)")


def test_lag_within_allowance_is_caught_up():
    history = _history(_polls(0.0, 50, 500, 540))
    assert evaluate(history, 1_500.0, False, allowed_lag=40) == Evaluation(Status.OK, "caught up: lag 40 (allowed 40)")
    assert evaluate(history, 1_500.0, False, allowed_lag=39).status == Status.OK  # idle, see below


def test_healthy_consumer_keeping_up_with_a_small_lag_is_ok():
    # Producer writes 100/poll, the consumer trails by 20..40 and the lag goes up and down.
    lags = [20, 40, 30, 20, 40, 30, 20, 40, 30, 20, 40, 30]
    rows = [(i * CYCLE, 1_000 + 100 * i - lag, 1_000 + 100 * i) for i, lag in enumerate(lags)]
    history = _history(rows)
    result = evaluate(history, rows[-1][0], True)
    assert result.status == Status.OK
    assert result.reason == "offset advancing (1,170 to 2,070 in 4 min 30 s), lag 30"


# -- WARN ----------------------------------------------------------------------------------------------


def test_consumer_falling_behind_warns():
    # Producer +1,000/poll, consumer +700/poll: lag grows by 300 every poll.
    rows = [(i * CYCLE, 10_000 + 700 * i, 10_100 + 1_000 * i) for i in range(12)]
    result = evaluate(_history(rows), rows[-1][0], True)
    assert result.status == Status.WARN
    # Window of 10 entries: polls 2..11, lags 700 .. 3,400.
    assert result.reason == ("lag grew from 700 to 3,400 over 10 offsets in 4 min 30 s without ever decreasing: "
                             "the consumer moves but falls behind")


def test_no_warning_when_lag_decreased_once_stayed_flat_or_was_within_allowance():
    def history_with_lags(lags: list[int]) -> PartitionHistory:
        return _history([(i * CYCLE, 1_000 * i, 1_000 * i + lag) for i, lag in enumerate(lags)])

    end = 9 * CYCLE
    noisy = history_with_lags([100, 200, 300, 250, 400, 500, 600, 700, 800, 900])
    assert evaluate(noisy, end, True).status == Status.OK
    # Flat lag is a consumer keeping pace at a constant distance (Burrow would warn).
    assert evaluate(history_with_lags([300] * 10), end, True).status == Status.OK
    # Grew throughout, but one entry was within the allowance.
    growing = history_with_lags([50, 200, 300, 400, 500, 600, 700, 800, 900, 1_000])
    assert evaluate(growing, end, True, allowed_lag=0).status == Status.WARN
    assert evaluate(growing, end, True, allowed_lag=50).status == Status.OK


# -- STOP and STALL -------------------------------------------------------------------------------------


def _dead_consumer(now: float) -> PartitionHistory:
    """Caught up at 1,200 for 5 polls, then the producer writes 200/poll and the offset never moves
    again; polled up to `now`."""
    rows = _polls(0.0, 5, 1_200, 1_200) + _polls(150.0, 100, 1_200, lambda i: 1_400 + 200 * i)
    return _history([row for row in rows if row[0] <= now])


def test_stopped_consumer_without_members_is_stop():
    history = _dead_consumer(510.0)
    # New data first seen at t=150; 6 min later it is still waiting.
    result = evaluate(history, 510.0, has_members=False)
    assert result == Evaluation(
        Status.STOP,
        "offset 1,200 unchanged for 8 min 30 s while lag is 2,600, new data waiting 6 min "
        "and the group has no members: no member is consuming")


def test_stuck_consumer_with_members_is_stall():
    result = evaluate(_dead_consumer(510.0), 510.0, has_members=True)
    assert result == Evaluation(
        Status.STALL,
        "offset 1,200 unchanged for 8 min 30 s while lag is 2,600, new data waiting 6 min; "
        "members present but the offset does not move")


def test_unknown_membership_is_stop_and_says_so():
    result = evaluate(_dead_consumer(510.0), 510.0, has_members=None)
    assert result.status == Status.STOP
    assert result.reason.endswith("; group membership unknown, so treated as stopped")
    assert "lag is 2,600" in result.reason


def test_no_stop_until_new_data_waited_longer_than_stall_after():
    history = _dead_consumer(450.0)
    result = evaluate(history, 450.0, has_members=False)  # waited exactly 300 s: not yet longer
    assert result == Evaluation(
        Status.OK, "offset 1,200 unchanged for 7 min 30 s, new data waiting 5 min (stall after 5 min), lag 2,200")
    assert evaluate(history, 451.0, has_members=False).status == Status.STOP
    assert evaluate(history, 451.0, has_members=False, stall_after=600.0).status == Status.OK


def test_a_consumer_that_commits_rarely_is_judged_against_the_window_span():
    # A checkpointing job: moves every 10 min while data arrives every poll; window span 40 min.
    rows = []
    for i in range(100):
        t = i * CYCLE
        rows.append((t, 1_000 * ((i // 20) * 20), 1_000 * i + 1_000))
    history = _history(rows)
    assert len(history) == 5
    last_move = 80 * CYCLE
    result = evaluate(history, last_move + 20 * 60.0, has_members=True)  # waiting ~20 min, span 40 min
    assert result.status == Status.OK
    assert "(stall after 40 min)" in result.reason
    assert evaluate(history, last_move + 41 * 60.0, has_members=True).status == Status.STALL


def test_slow_topic_message_waiting_briefly_is_not_flagged():
    # Burrow's false alarm: the consumer is caught up for 20 minutes; a message arrives and the first poll
    # after it sees lag 1 with an offset that has not moved for 20 minutes. Burrow's clock starts at the
    # last commit and says STOP; here it starts when the message shows up.
    rows = _polls(0.0, 40, 100, 100) + [(1_200.0, 100, 101)]
    history = _history(rows)
    result = evaluate(history, 1_200.0, has_members=False)
    assert result == Evaluation(
        Status.OK, "offset 100 unchanged for 20 min, new data waiting 0 s (stall after 5 min), lag 1")
    # The consumer takes it on the next poll: caught up again.
    _feed(history, [(1_230.0, 101, 101)])
    assert evaluate(history, 1_230.0, has_members=False).status == Status.OK


def test_slow_topic_with_a_dead_consumer_is_still_flagged_once_the_message_waits_too_long():
    history = _history(_polls(0.0, 40, 100, 100) + _polls(1_200.0, 12, 100, 101))
    result = evaluate(history, 1_200.0 + 301.0, has_members=False)
    assert result.status == Status.STOP
    assert "offset 100 unchanged for 25 min 1 s while lag is 1, new data waiting 5 min 1 s" in result.reason


def test_idle_topic_with_leftover_lag_is_not_flagged():
    # The consumer moved to 95 while the watermark was 100 (say, transaction markers or an off-by-one
    # commit) and the producer went quiet: lag 5 for an hour, nothing new to consume.
    rows = [(0.0, 90, 100)] + _polls(30.0, 120, 95, 100)
    history = _history(rows)
    result = evaluate(history, 3_600.0, has_members=False)
    assert result == Evaluation(
        Status.OK, "lag 5 but no new data since offset 95 was first seen 59 min 30 s ago: nothing new to consume")
    # New data arrives: from then on the ordinary clock runs.
    _feed(history, _polls(3_630.0, 12, 95, 130))
    assert evaluate(history, 3_630.0 + 300.0, has_members=False).status == Status.OK
    stopped = evaluate(history, 3_630.0 + 301.0, has_members=False)
    assert stopped.status == Status.STOP and "lag is 35, new data waiting 5 min 1 s" in stopped.reason


# -- REWIND --------------------------------------------------------------------------------------------


def test_rewound_offset_not_regained_is_rewind():
    offsets = [1_000, 2_000, 3_000, 1_500, 2_000, 2_500]
    rows = [(i * CYCLE, offset, 3_500 + 100 * i) for i, offset in enumerate(offsets)]
    result = evaluate(_history(rows), 5 * CYCLE, has_members=True)
    assert result == Evaluation(
        Status.REWIND,
        "offset went back from 3,000 to 1,500 1 min ago and has not regained 3,000 (now 2,500, lag 1,500)")


def test_rewind_later_regained_is_not_rewind():
    offsets = [1_000, 2_000, 3_000, 1_500, 2_500, 3_000, 3_900]
    rows = [(i * CYCLE, offset, 4_000) for i, offset in enumerate(offsets)]
    result = evaluate(_history(rows), 6 * CYCLE, has_members=True)
    assert result.status == Status.OK
    assert result.reason == "offset advancing (1,000 to 3,900 in 3 min), lag 100"


def test_rewind_from_a_caught_up_position_is_reported():
    # Burrow skips REWIND when any entry had zero lag, which hides exactly this reset.
    rows = [(0.0, 1_000, 1_000), (30.0, 2_000, 2_000), (60.0, 500, 2_100)]
    result = evaluate(_history(rows), 60.0, has_members=True)
    assert result.status == Status.REWIND
    assert "from 2,000 to 500" in result.reason and "lag 1,600" in result.reason


def test_a_rewound_consumer_that_then_stops_is_reported_as_stopped():
    rows = [(0.0, 1_000, 1_100), (30.0, 2_000, 2_100), (60.0, 500, 2_200)]
    rows += _polls(90.0, 11, 500, lambda i: 2_300 + 10 * i)
    result = evaluate(_history(rows), 90.0 + 301.0, has_members=False)
    assert result.status == Status.STOP


# -- transitions ----------------------------------------------------------------------------------------


def test_one_partition_through_ok_warn_stop_stall_and_back_to_ok():
    history = PartitionHistory()
    # Keeping up.
    _feed(history, [(i * CYCLE, 1_000 * i, 1_000 * i + 10) for i in range(10)])
    assert evaluate(history, 9 * CYCLE, False).status == Status.OK
    # Falling behind: producer +1,000/poll, consumer +500/poll (10 more entries push the good ones out).
    _feed(history, [((10 + i) * CYCLE, 9_000 + 500 * (i + 1), 10_000 + 1_000 * (i + 1)) for i in range(10)])
    now = 19 * CYCLE
    assert evaluate(history, now, True).status == Status.WARN
    # The consumer dies at 14,000 while data keeps coming (first seen one poll later); the window
    # spans 4 min 30 s, so stall_after (5 min) is the threshold.
    _feed(history, [(now + (i + 1) * CYCLE, 14_000, 20_000 + 1_000 * (i + 1)) for i in range(11)])
    assert evaluate(history, now + 330.0, False).status == Status.WARN  # waited exactly 5 min: not yet
    assert evaluate(history, now + 331.0, False).status == Status.STOP
    # A member joins but the offset still does not move.
    assert evaluate(history, now + 331.0, True).status == Status.STALL
    # It consumes everything.
    _feed(history, [(now + 13 * CYCLE, 32_000, 32_000)])
    assert evaluate(history, now + 13 * CYCLE, True) == Evaluation(Status.OK, "caught up: lag 0 (allowed 0)")


def test_rewind_then_catch_up_goes_rewind_then_ok():
    history = _history([(0.0, 5_000, 5_000), (30.0, 6_000, 6_000), (60.0, 1_000, 6_000)])
    assert evaluate(history, 60.0, True).status == Status.REWIND
    _feed(history, [(90.0, 4_000, 6_000)])
    assert evaluate(history, 90.0, True).status == Status.REWIND
    _feed(history, [(120.0, 6_000, 6_050)])
    assert evaluate(history, 120.0, True).status == Status.OK


# -- the window ------------------------------------------------------------------------------------------


def test_window_is_bounded_at_size_and_unchanged_polls_add_nothing():
    history = PartitionHistory(size=10)
    _feed(history, [(i * CYCLE, 10 * i, 10 * i + 5) for i in range(1_000)])
    assert len(history) == 10
    _feed(history, _polls(1_000 * CYCLE, 1_000, 10_000, 10_000))
    assert len(history) == 10
    assert [e.offset for e in history._entries] == [9_910 + 10 * i for i in range(9)] + [10_000]


def test_changes_closer_than_min_distance_replace_the_previous_entry_but_keep_its_time():
    history = PartitionHistory(size=10, min_distance=60.0)
    # The offset moves every 10 s; entries open only every 60 s of the slot's first time.
    _feed(history, [(10.0 * i, 100 * i, 100 * i + 7) for i in range(13)])
    entries = list(history._entries)
    assert [(e.t, e.offset, e.lag) for e in entries] == [(0.0, 500, 7), (60.0, 1_100, 7), (120.0, 1_200, 7)]
    assert len(history) == 3


def test_min_distance_never_merges_a_rewind_away():
    history = PartitionHistory(size=10, min_distance=60.0)
    _feed(history, [(0.0, 3_000, 3_500), (10.0, 1_000, 3_500), (20.0, 1_200, 3_500)])
    assert [(e.t, e.offset) for e in history._entries] == [(0.0, 3_000), (10.0, 1_200)]
    result = evaluate(history, 20.0, True)
    assert result.status == Status.REWIND and "from 3,000 to 1,200" in result.reason


def test_out_of_order_polls_are_ignored():
    history = _history([(100.0, 500, 600), (130.0, 600, 700)])
    history.observe(110.0, 50, 700)  # late answer from an earlier cycle
    assert [e.offset for e in history._entries] == [500, 600]
    assert evaluate(history, 130.0, True).status == Status.OK


# -- group roll-up -----------------------------------------------------------------------------------------


OK = Evaluation(Status.OK, "caught up: lag 0 (allowed 0)")
WARN = Evaluation(Status.WARN, "lag grew from 700 to 3,400 over 10 offsets in 4 min 30 s without ever decreasing")
STOP = Evaluation(Status.STOP, "offset 1,200 unchanged for 8 min 30 s while lag is 2,600, new data waiting 6 min "
                               "and the group has no members: no member is consuming")
STALL = Evaluation(Status.STALL, "offset 7 unchanged for 9 min while lag is 3, new data waiting 6 min; "
                                 "members present but the offset does not move")
REWIND = Evaluation(Status.REWIND, "offset went back from 3,000 to 1,500 1 min ago and has not regained 3,000")
NOTFOUND = Evaluation(Status.NOTFOUND, "no committed offset observed")


@pytest.mark.parametrize("partition", [STOP, STALL, REWIND])
def test_stop_stall_and_rewind_become_err_at_group_level_naming_the_partition_status(partition):
    result = group_status({("orders", 0): OK, ("orders", 3): partition, ("orders", 1): WARN})
    assert result.status == Status.ERR
    assert result.reason == f"orders[3] {partition.status.name}: {partition.reason}; 1 other partition not OK"


def test_group_takes_the_worst_partition_by_code_first_on_ties():
    result = group_status([OK, STOP, WARN, STALL, STOP, OK])
    assert result == Evaluation(Status.ERR, f"worst partition STALL: {STALL.reason}; 3 other partitions not OK")
    assert group_status({"a": STOP, "b": STOP}).reason.startswith("a STOP: ")


def test_group_warn_stays_warn():
    result = group_status({("orders", 2): WARN, ("orders", 0): OK})
    assert result == Evaluation(Status.WARN, f"orders[2] WARN: {WARN.reason}")


def test_group_ok_notfound_and_empty():
    assert group_status([OK, OK, OK]) == Evaluation(Status.OK, "3 of 3 partitions OK")
    assert group_status(iter([OK, NOTFOUND])) == Evaluation(Status.OK, "1 of 2 partitions OK, 1 not observed yet")
    assert group_status({("t", 0): NOTFOUND}).status == Status.NOTFOUND
    assert group_status([]) == Evaluation(Status.NOTFOUND, "no partition of the group has an observed commit")


def test_group_of_real_evaluations():
    stopped = _dead_consumer(510.0)
    healthy = _history(_polls(0.0, 20, 800, 800))
    evaluations = {("payments", 0): evaluate(healthy, 510.0, False), ("payments", 1): evaluate(stopped, 510.0, False)}
    result = group_status(evaluations)
    assert result.status == Status.ERR
    assert result.reason.startswith("payments[1] STOP: offset 1,200 unchanged for 8 min 30 s while lag is 2,600")
