"""The Flink collector keeps the checkpoint history Flink lists (for the report's checkpoint table)."""

from __future__ import annotations

from tests.test_flink import RECORDED, _job, _replayed


async def test_history_of_recorded_answer_is_kept_newest_first():
    snapshot, _ = await _replayed(RECORDED["responses"])
    steady = _job(snapshot, RECORDED["steady"])
    history = steady.checkpoints.history
    assert [(c.checkpoint_id, c.status) for c in history] == [(2, "IN_PROGRESS"), (1, "COMPLETED")]
    completed = history[1]
    assert completed.triggered_at == 1795666724.643 and completed.finished_at == 1795666734.424
    assert (completed.duration_ms, completed.checkpointed_size, completed.state_size) == (9781.0, 265.0, 265.0)
    assert completed.failure_message is None
