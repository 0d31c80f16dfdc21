"""The in-memory store: bounded rings, delta reads, per-cycle cleanup, caps and the event log."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from monitoring.store import Store

SOURCE = ("orders", "kafka")
OTHER = ("billing", "kafka")
LAG = "kafka_consumergroup_lag"
HW = "kafka_topic_partition_current_offset"


def _lag_labels(group: str = "g", topic: str = "t", partition: int = 0, pipeline: str = "orders") -> tuple[str, ...]:
    return (pipeline, "local", group, topic, str(partition))


def _hw_labels(topic: str = "t", partition: int = 0, pipeline: str = "orders") -> tuple[str, ...]:
    return (pipeline, "local", topic, str(partition))


# -- rings and delta reads -------------------------------------------------------------------------


def test_ring_keeps_only_the_last_capacity_points_in_order():
    capacity = 7
    store = Store(points_per_series=capacity)
    labels = _lag_labels()
    for i in range(capacity * 3):
        store.append(SOURCE, LAG, labels, float(i), t=1000.0 + i)
    delta = store.since((LAG, labels), 0)
    assert delta.count == capacity * 3
    assert delta.values.tolist() == [float(i) for i in range(capacity * 2, capacity * 3)]
    assert delta.times.tolist() == [1000.0 + i for i in range(capacity * 2, capacity * 3)]
    assert store.stats()["points"] == capacity


def test_ring_before_it_wraps_returns_everything_written():
    store = Store(points_per_series=10)
    for i in range(4):
        store.append(SOURCE, LAG, _lag_labels(), i * 10.0, t=float(i))
    delta = store.since((LAG, _lag_labels()))
    assert (delta.count, delta.values.tolist(), delta.times.tolist()) == (4, [0.0, 10.0, 20.0, 30.0],
                                                                         [0.0, 1.0, 2.0, 3.0])


def test_delta_reads_stay_exact_across_the_whole_life_of_a_ring():
    # Capacity 50 (not a power of two): every point count from empty to wrapped three times,
    # read both as one delta per append and as one big delta from an old position.
    capacity = 50
    store = Store(points_per_series=capacity)
    key = (LAG, _lag_labels())
    seen = 0
    for i in range(capacity * 3 + 7):
        store.append(SOURCE, *key, float(i), t=float(i))
        delta = store.since(key, seen)
        assert (delta.count, delta.values.tolist(), delta.times.tolist()) == (i + 1, [float(i)], [float(i)])
        seen = delta.count
        assert store.latest(*key) == (float(i), float(i))
        if i in (10, 40, 60, 99):
            window = store.since(key, 0).values.tolist()
            assert window == [float(j) for j in range(max(0, i + 1 - capacity), i + 1)]
    assert store.stats()["bytes"] == capacity * 16


def test_delta_reads_return_only_new_points_and_the_new_count():
    store = Store(points_per_series=100)
    key = (LAG, _lag_labels())
    for i in range(5):
        store.append(SOURCE, *key, float(i), t=float(i))
    first = store.since(key, 0)
    assert first.count == 5 and first.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]

    for i in range(5, 8):
        store.append(SOURCE, *key, float(i), t=float(i))
    second = store.since(key, first.count)
    assert second.count == 8
    assert second.values.tolist() == [5.0, 6.0, 7.0]
    assert second.times.tolist() == [5.0, 6.0, 7.0]

    nothing = store.since(key, second.count)
    assert nothing.count == 8 and nothing.values.size == 0 and nothing.times.size == 0


def test_reader_that_fell_behind_more_than_capacity_gets_the_last_capacity_points():
    capacity = 10
    store = Store(points_per_series=capacity)
    key = (LAG, _lag_labels())
    for i in range(3):
        store.append(SOURCE, *key, float(i), t=float(i))
    seen = store.since(key, 0).count
    assert seen == 3
    for i in range(3, 3 + 25):
        store.append(SOURCE, *key, float(i), t=float(i))
    delta = store.since(key, seen)
    assert delta.count == 28
    assert delta.values.tolist() == [float(i) for i in range(18, 28)]


def test_delta_arrays_are_copies_not_views_of_the_ring():
    store = Store(points_per_series=3)
    key = (LAG, _lag_labels())
    for i in range(3):
        store.append(SOURCE, *key, float(i), t=float(i))
    delta = store.since(key)
    for i in range(3, 6):
        store.append(SOURCE, *key, float(i), t=float(i))
    assert delta.values.tolist() == [0.0, 1.0, 2.0]


def test_since_on_an_unknown_series_is_none():
    assert Store().since((LAG, _lag_labels())) is None


def test_latest():
    store = Store(points_per_series=4)
    key = (LAG, _lag_labels())
    assert store.latest(*key) is None
    for i in range(10):
        store.append(SOURCE, *key, i * 2.0, t=100.0 + i)
    assert store.latest(*key) == (109.0, 18.0)
    store.append(SOURCE, HW, _hw_labels(), 5, t=200.0)
    values = {key: (source, t, v) for key, source, t, v in store.latest_values()}
    assert values == {key: (SOURCE, 109.0, 18.0), (HW, _hw_labels()): (SOURCE, 200.0, 5.0)}
    assert [k for k, *_ in store.latest_values({HW})] == [(HW, _hw_labels())]


# -- cycles ----------------------------------------------------------------------------------------


def test_cycle_removes_unwritten_series_of_its_source_only():
    store = Store()
    with store.cycle(SOURCE, t=1.0) as cycle:
        cycle.set(LAG, ("local", "g", "t", "0"), 1)
        cycle.set(LAG, ("local", "g", "t", "1"), 2)
        cycle.set(HW, ("local", "t", "0"), 3)
    with store.cycle(OTHER, t=1.0) as cycle:
        cycle.set(LAG, ("local", "g", "t", "0"), 9)
    assert len(store.keys()) == 4

    with store.cycle(SOURCE, t=2.0) as cycle:
        cycle.set(LAG, ("local", "g", "t", "0"), 5)
    assert sorted(store.keys()) == sorted([
        (LAG, _lag_labels(partition=0)),
        (LAG, _lag_labels(partition=0, pipeline="billing")),
    ])
    assert store.latest(LAG, _lag_labels(partition=0)) == (2.0, 5.0)
    assert store.latest(LAG, _lag_labels(partition=0, pipeline="billing")) == (1.0, 9.0)


def test_cycle_keeps_retained_series():
    store = Store()
    with store.cycle(SOURCE, t=1.0) as cycle:
        cycle.set(LAG, ("local", "broken", "t", "0"), 4)
        cycle.set(LAG, ("local", "ok", "t", "0"), 1)
        cycle.set(LAG, ("local", "gone", "t", "0"), 1)
    with store.cycle(SOURCE, t=2.0) as cycle:
        cycle.set(LAG, ("local", "ok", "t", "0"), 2)
        cycle.retain(lambda key: key[1][:3] == ("orders", "local", "broken"))
    assert sorted(k[1][2] for k in store.keys(LAG)) == ["broken", "ok"]
    assert store.latest(LAG, _lag_labels("broken")) == (1.0, 4.0)  # kept with its old time, not rewritten


def test_set_many_only_changes_adds_points_on_change_and_keeps_unchanged_series():
    store = Store()
    leader = "kafka_topic_partition_leader"
    rows = [(("local", "t", "0"), 1), (("local", "t", "1"), 2), (("local", "t", "2"), None)]
    for t in (1.0, 2.0):
        with store.cycle(SOURCE, t=t) as cycle:
            cycle.set_many(leader, rows, only_changes=True)
    with store.cycle(SOURCE, t=3.0) as cycle:  # partition 1's leader moves, partition 2 is gone
        cycle.set_many(leader, [(("local", "t", "0"), 1), (("local", "t", "1"), 3)], only_changes=True)
    points = {k[1][3]: (list(d.times), list(d.values)) for k in store.keys(leader) if (d := store.since(k))}
    assert points == {"0": ([1.0], [1.0]), "1": ([1.0, 3.0], [2.0, 3.0])}
    assert store.latest(leader, ("orders", "local", "t", "0")) == (1.0, 1.0)


def test_set_many_only_changes_counts_nan_after_nan_as_no_change():
    store = Store()
    for t in (1.0, 2.0):
        with store.cycle(SOURCE, t=t) as cycle:
            cycle.set_many(HW, [(("local", "t", "0"), None)], only_changes=True)
    with store.cycle(SOURCE, t=3.0) as cycle:
        cycle.set_many(HW, [(("local", "t", "0"), 5)], only_changes=True)
    delta = store.since((HW, _hw_labels()))
    assert list(delta.times) == [1.0, 3.0] and math.isnan(delta.values[0]) and delta.values[1] == 5.0


def test_set_many_rows_go_to_the_same_series_cycle_after_cycle():
    # The second and third cycles reuse the first one's resolution of rows to series
    # (Store._column); equal labels built anew each cycle must still land on the same series.
    store = Store()
    for t in (1.0, 2.0, 3.0):
        with store.cycle(SOURCE, t=t) as cycle:
            cycle.set_many(LAG, [(("local", "g", "t", str(p)), t * 10 + p) for p in range(3)])
    for p in range(3):
        delta = store.since((LAG, _lag_labels(partition=p)))
        assert (list(delta.times), list(delta.values)) == ([1.0, 2.0, 3.0], [10.0 + p, 20.0 + p, 30.0 + p])
    assert store.stats()["series"] == 3


def test_set_column_writes_labels_and_values_given_apart_and_refuses_a_length_mismatch():
    store = Store()
    labels = [("local", "g", "t", "0"), ("local", "g", "t", "1")]
    with store.cycle(SOURCE, t=1.0) as cycle:
        cycle.set_column(LAG, labels, [3, None])
        with pytest.raises(ValueError, match="2 rows of labels but 1 values"):
            cycle.set_column(LAG, labels, [3])
    assert store.latest(LAG, _lag_labels(partition=0)) == (1.0, 3.0)
    assert math.isnan(store.latest(LAG, _lag_labels(partition=1))[1])


def test_set_many_recreates_series_removed_since_the_rows_were_last_written():
    store = Store()
    rows = [(("local", "g", "t", "0"), 1), (("local", "g", "t", "1"), 2)]
    with store.cycle(SOURCE, t=1.0) as cycle:
        cycle.set_many(LAG, rows)
    with store.cycle(SOURCE, t=2.0):  # nothing written: both series removed
        pass
    assert store.keys(LAG) == []
    with store.cycle(SOURCE, t=3.0) as cycle:  # the same rows again
        cycle.set_many(LAG, rows)
    store.remove_source(SOURCE)
    with store.cycle(SOURCE, t=4.0) as cycle:  # and again after the source was removed
        cycle.set_many(LAG, rows)
    delta = store.since((LAG, _lag_labels(partition=1)))
    assert (delta.count, list(delta.times), list(delta.values)) == (1, [4.0], [2.0])


def test_set_many_rows_refused_by_a_full_store_are_skipped_and_written_once_there_is_room():
    store = Store(max_series=1)
    rows = [(("local", "g", "t", "0"), 1), (("local", "g", "t", "1"), 2)]
    with store.cycle(OTHER, t=1.0) as cycle:
        cycle.set(HW, ("local", "t", "0"), 5)
    with store.cycle(SOURCE, t=1.0) as cycle:  # full: both refused
        cycle.set_many(LAG, rows)
    assert store.keys(LAG) == [] and store.stats()["refused_series"] == 2
    store.remove_source(OTHER)
    with store.cycle(SOURCE, t=2.0) as cycle:  # room for one
        cycle.set_many(LAG, rows)
    assert store.latest(LAG, _lag_labels(partition=0)) == (2.0, 1.0)
    assert store.latest(LAG, _lag_labels(partition=1)) is None


def test_cycle_removes_nothing_when_the_block_raises():
    store = Store()
    with store.cycle(SOURCE, t=1.0) as cycle:
        cycle.set(LAG, ("local", "g", "t", "0"), 1)
        cycle.set(LAG, ("local", "g", "t", "1"), 2)
    generation = store.series_generation
    with pytest.raises(RuntimeError, match="half way"):
        with store.cycle(SOURCE, t=2.0) as cycle:
            cycle.set(LAG, ("local", "g", "t", "0"), 7)
            raise RuntimeError("failed half way")
    assert sorted(store.keys(LAG)) == [(LAG, _lag_labels(partition=0)), (LAG, _lag_labels(partition=1))]
    assert store.latest(LAG, _lag_labels(partition=1)) == (1.0, 2.0)  # not written by the failed cycle: kept
    assert store.series_generation == generation


def test_cycle_set_prefixes_the_pipeline_and_records_none_as_nan():
    store = Store()
    with store.cycle(SOURCE, t=5.0) as cycle:
        cycle.set(LAG, ("local", "g", "t", "0"), None)
        cycle.set(HW, ("local", "t", "0"), 12)
    t, value = store.latest(LAG, _lag_labels())
    assert t == 5.0 and math.isnan(value)
    assert store.latest(HW, _hw_labels()) == (5.0, 12.0)


def test_series_generation_bumps_on_create_and_remove():
    store = Store()
    assert store.series_generation == 0
    with store.cycle(SOURCE, t=1.0) as cycle:
        cycle.set(LAG, ("local", "g", "t", "0"), 1)
        cycle.set(LAG, ("local", "g", "t", "1"), 1)
    assert store.series_generation == 2

    with store.cycle(SOURCE, t=2.0) as cycle:  # same series again: no change
        cycle.set(LAG, ("local", "g", "t", "0"), 2)
        cycle.set(LAG, ("local", "g", "t", "1"), 2)
    assert store.series_generation == 2

    with store.cycle(SOURCE, t=3.0) as cycle:  # one removed
        cycle.set(LAG, ("local", "g", "t", "0"), 3)
    assert store.series_generation == 3

    store.remove_source(SOURCE)
    assert store.series_generation == 4
    assert store.keys() == []
    store.remove_source(SOURCE)  # nothing to remove: no bump
    assert store.series_generation == 4


def test_remove_source_drops_series_and_snapshot_of_that_source_only():
    store = Store()
    store.append(SOURCE, LAG, _lag_labels(), 1, t=1)
    store.append(OTHER, LAG, _lag_labels(pipeline="billing"), 1, t=1)
    store.publish_snapshot(SOURCE, {"a": 1}, t=1)
    store.publish_snapshot(OTHER, {"b": 2}, t=2)
    store.remove_source(SOURCE)
    assert store.keys() == [(LAG, _lag_labels(pipeline="billing"))]
    assert store.snapshot(SOURCE) is None
    assert store.snapshot(OTHER) == (2, {"b": 2})


# -- caps and validation ---------------------------------------------------------------------------


def test_max_series_refuses_new_series_but_existing_ones_keep_updating(caplog):
    store = Store(points_per_series=10, max_series=2)
    store.append(SOURCE, LAG, _lag_labels(partition=0), 1, t=1)
    store.append(SOURCE, LAG, _lag_labels(partition=1), 1, t=1)
    generation = store.series_generation
    with caplog.at_level(logging.WARNING, logger="monitoring.store"):
        store.append(SOURCE, LAG, _lag_labels(partition=2), 1, t=1)
        store.append(SOURCE, LAG, _lag_labels(partition=3), 1, t=1)
    assert sorted(store.keys()) == [(LAG, _lag_labels(partition=0)), (LAG, _lag_labels(partition=1))]
    assert store.latest(LAG, _lag_labels(partition=2)) is None
    assert store.stats()["refused_series"] == 2
    assert store.series_generation == generation
    assert len([r for r in caplog.records if "store is full" in r.getMessage()]) == 1  # logged once, not per write

    store.append(SOURCE, LAG, _lag_labels(partition=0), 42, t=2)
    assert store.latest(LAG, _lag_labels(partition=0)) == (2.0, 42.0)
    assert store.since((LAG, _lag_labels(partition=0))).count == 2


def test_unknown_metric_name_raises():
    store = Store()
    with pytest.raises(KeyError, match="not_a_metric"):
        store.append(SOURCE, "not_a_metric", ("orders",), 1, t=1)
    with pytest.raises(KeyError):
        with store.cycle(SOURCE, t=1) as cycle:
            cycle.set("kafka_consumergroup_lagg", ("local", "g", "t", "0"), 1)
    assert store.keys() == []


def test_wrong_label_count_raises():
    store = Store()
    with pytest.raises(ValueError, match="kafka_consumergroup_lag takes labels"):
        store.append(SOURCE, LAG, ("orders", "local", "g", "t"), 1, t=1)
    with pytest.raises(ValueError):
        with store.cycle(SOURCE, t=1) as cycle:
            cycle.set(HW, ("local", "t", "0", "extra"), 1)
    assert store.keys() == []
    assert store.series_generation == 0


def test_memory_is_bounded_by_capacity():
    store = Store(points_per_series=100)
    key = (LAG, _lag_labels())
    for i in range(100_000):
        store.append(SOURCE, *key, float(i), t=float(i))
    stats = store.stats()
    assert stats["bytes"] == 100 * 16
    assert stats["points"] == 100
    assert stats["series"] == 1
    delta = store.since(key)
    assert delta.count == 100_000
    assert np.array_equal(delta.values, np.arange(99_900, 100_000, dtype=np.float64))


# -- events ----------------------------------------------------------------------------------------


def test_event_log_is_bounded_and_read_by_sequence():
    store = Store(events=5)
    events = [store.add_event("orders", "kafka", "info", f"event {i}", t=float(i)) for i in range(1, 13)]
    assert [e.seq for e in events] == list(range(1, 13))
    assert store.stats()["events"] == 5
    assert [e.message for e in store.events_since(0)] == [f"event {i}" for i in range(8, 13)]
    assert [e.seq for e in store.events_since(10)] == [11, 12]
    assert store.events_since(12) == []
    assert [e.seq for e in store.events_since(0, limit=2)] == [11, 12]
    last = store.events_since(11)[0]
    assert (last.time, last.pipeline, last.collector, last.severity) == (12.0, "orders", "kafka", "info")


def test_snapshots_are_per_source_and_latest_wins():
    store = Store()
    store.publish_snapshot(SOURCE, "first", t=1.0)
    store.publish_snapshot(SOURCE, "second", t=2.0)
    assert store.snapshot(SOURCE) == (2.0, "second")
    assert store.snapshot(OTHER) is None


def test_feed_listeners_are_told_of_new_rows_and_a_failing_one_does_not_fail_the_writer(caplog):
    store = Store()
    source = ("shop", "change_feed")
    calls: list[int] = []
    unsubscribe = store.on_feed(source, lambda: calls.append(store.feed_position(source)))

    def broken() -> None:
        raise RuntimeError("session gone")

    store.on_feed(source, broken)
    store.on_feed(("other", "change_feed"), lambda: calls.append(-1))
    row = ("Order", "insert", "1", {"id": 1}, 1.0)
    assert store.feed_append(source, [row, row], per_entity=10, capacity=100, delivered_at=2.0) == 2
    assert calls == [2]  # once per append, after the rows are in (the listener reads the new position)
    assert "feed listener" in caplog.text and "session gone" in caplog.text
    unsubscribe()
    unsubscribe()  # twice is harmless
    store.feed_append(source, [row], per_entity=10, capacity=100, delivered_at=3.0)
    assert calls == [2]
