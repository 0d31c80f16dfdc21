"""Views built in-process (no server): what a session's tables hold for a known snapshot."""

from __future__ import annotations

import math

from apps.views import KafkaLagView
from collectors.kafka_model import GroupInfo, GroupTopic, KafkaSnapshot, Member, PartitionLag
from collectors.kafka_status import Status
from monitoring.health import CollectorHealth, State
from monitoring.store import Store


def _snapshot() -> KafkaSnapshot:
    billing = GroupInfo("billing", "Stable", "consumer",
                        (Member("m-1", "billing-1", "/10.0.0.7", (("orders", 0), ("orders", 1))),), 1,
                        (PartitionLag("orders", 0, 4, 10, 6, 0, 2.5, "interpolated", Status.OK, "ok", "billing-1@10.0.0.7"),
                         PartitionLag("orders", 1, 7, 7, 0, 0, 0.0, "caught_up", Status.OK, "caught up",
                                      "billing-1@10.0.0.7")),
                        Status.OK, "2 of 2 partitions OK")
    audit = GroupInfo("audit", "Empty", "consumer", (), 1,
                      (PartitionLag("orders", 0, 1, 10, 9, 0, math.nan, "unknown", Status.STOP, "no member is consuming"),),
                      Status.ERR, "orders[0] STOP: no member is consuming")
    return KafkaSnapshot("local", None, (), {}, (audit, billing),
                         {("billing", "orders"): GroupTopic("billing", "orders", 6, 2.5, 2.0, 3.0, 4, math.inf),
                          ("audit", "orders"): GroupTopic("audit", "orders", 9, math.nan, 0.0, math.inf, 1, 30.0)},
                         (), 7, 1000.0)


def _view() -> KafkaLagView:
    store = Store()
    store.set_health(CollectorHealth("orders", "kafka", "k:9092", 5.0, state=State.UP, last_success=1e12))
    store.publish_snapshot(("orders", "kafka"), _snapshot(), t=1000.0)
    return KafkaLagView(store, "orders", "kafka", "local")


def test_groups_partitions_and_retention_warning():
    view = _view()
    groups = view.groups.value.set_index("group")
    assert groups.loc["audit", "status"] == "ERR" and groups.loc["billing", "status"] == "OK"
    assert groups.loc["billing", "catch-up"] == 3.0 and math.isinf(groups.loc["audit", "catch-up"])
    assert list(view.partitions.value["lag"]) == [9, 6, 0]  # most lagging first, across groups
    assert "will be deleted before they are consumed in about 30 s" in view.status.text
    assert view.members.value.empty  # members are shown for a chosen group


def test_drilling_down_into_a_group_shows_its_partitions_and_members():
    view = _view()
    assert view.group_choice.options == ["all groups", "audit", "billing"]
    view.group_choice.value = "billing"
    assert list(view.partitions.value["group"]) == ["billing", "billing"]
    assert list(view.partitions.value["owner"]) == ["billing-1@10.0.0.7"] * 2
    (member,) = view.members.value.to_dict("records")
    assert member == {"member": "m-1", "client id": "billing-1", "host": "/10.0.0.7",
                      "partitions": "orders[0], orders[1]"}
    view.group_choice.value = "all groups"
    assert len(view.partitions.value) == 3
