"""The monitoring history: minute rollups in SQLite, read back in steps, compacted with age."""

from __future__ import annotations

import pytest

from tcdeploy.server.gateway import MetricsHistory, Rollup

DAY = 86400
T0 = 1_800_000_000 - 1_800_000_000 % 300  # a 5-minute boundary


def minute(t: int, requests: int, p50: float | None, p99: float | None, **more) -> Rollup:
    return Rollup("svc:a", t, {"requests": requests, "p50_latency_ms": p50, "p99_latency_ms": p99, **more})


@pytest.fixture
def history(tmp_path):
    h = MetricsHistory(tmp_path / "metrics.db")
    yield h
    h.close()


def test_minutes_come_back_as_minutes_and_merge_into_five(history, tmp_path):
    history.write([minute(T0 + 60 * i, i + 1, 10.0 * (i + 1), 20.0 * (i + 1), cpu_percent=10.0 * i) for i in range(5)])
    history.write([Rollup("svc:b", T0, {"requests": 99})])
    steps = history.steps("svc:a", T0, T0 + 300, 60)
    assert [s["time"] for s in steps] == [T0 + 60 * i for i in range(5)]
    assert [s["requests"] for s in steps] == [1, 2, 3, 4, 5]
    [five] = history.steps("svc:a", T0, T0 + 300, 300)
    assert five["requests"] == 15 and five["p99_latency_ms"] == 100.0 and five["cpu_percent"] == 20.0
    # p50 weighted by requests: (1*10 + 2*20 + 3*30 + 4*40 + 5*50) / 15
    assert five["p50_latency_ms"] == pytest.approx(550 / 15)
    assert (tmp_path / "metrics.db").stat().st_mode & 0o777 == 0o600


def test_a_minute_written_again_replaces_the_first(history):
    history.write([minute(T0, 1, None, None)])
    history.write([minute(T0, 7, 5.0, 9.0)])
    assert [s["requests"] for s in history.steps("svc:a", T0, T0 + 60, 60)] == [7]
    assert history.last_time() == T0


def test_a_restart_within_a_minute_adds_its_requests_and_keeps_the_most_ready_replicas(history, tmp_path):
    history.write([minute(T0, 5, 10.0, 20.0), Rollup("svc:a:replicas", T0, {"replicas": 2, "ready_replicas": 2})])
    after = MetricsHistory(tmp_path / "metrics.db")  # the next server process, same minute
    try:
        after.write([minute(T0, 2, 40.0, 90.0), Rollup("svc:a:replicas", T0, {"replicas": 2, "ready_replicas": 0})])
        after.write([minute(T0, 3, 40.0, 80.0)])  # its own minute again: replaces its own row only
        [merged] = after.steps("svc:a", T0, T0 + 60, 60)
        assert merged["requests"] == 8 and merged["p99_latency_ms"] == 80.0
        assert merged["p50_latency_ms"] == pytest.approx((5 * 10 + 3 * 40) / 8)
        [counts] = after.steps("svc:a:replicas", T0, T0 + 60, 60)
        assert counts["replicas"] == 2 and counts["ready_replicas"] == 2
        after.compact(T0 + 40 * DAY - 86400 * 30)  # T0 is now past the minute rows' 8 days
        [five] = after.steps("svc:a", T0, T0 + 300, 300)
        assert five["requests"] == 8 and five["time"] == T0
    finally:
        after.close()


def test_old_minutes_are_compacted_and_older_rows_dropped(history):
    now = T0 + 40 * DAY
    old = T0 + 10 * DAY  # past the 8 days of minutes, within the 35 days of 5-minute rows
    history.write([minute(old + 60 * i, 2, 10.0, 30.0 + i) for i in range(10)])
    history.write([minute(T0, 5, 1.0, 1.0)])  # past every retention
    history.write([minute(now - 120, 1, 3.0, 4.0)])  # recent: stays a minute
    history.compact(now)
    assert history.steps("svc:a", T0, T0 + 300, 60) == []
    kept = history.steps("svc:a", old, old + 600, 60)
    assert [s["time"] for s in kept] == [old, old + 300]  # two 5-minute rows now
    assert [s["requests"] for s in kept] == [10, 10] and [s["p99_latency_ms"] for s in kept] == [34.0, 39.0]
    assert [s["requests"] for s in history.steps("svc:a", now - 300, now, 60)] == [1]


def test_bad_windows_and_retentions_are_refused(history, tmp_path):
    with pytest.raises(ValueError, match="whole number of minutes"):
        history.steps("svc:a", T0, T0 + 60, 30)
    with pytest.raises(ValueError, match="before start"):
        history.steps("svc:a", T0, T0 - 60, 60)
    with pytest.raises(ValueError, match="steps"):
        history.steps("svc:a", 0, 60 * 20_000, 60)
    with pytest.raises(ValueError, match="at least 7 days"):
        MetricsHistory(tmp_path / "other.db", minute_days=1)
