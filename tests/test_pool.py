"""The core's turn pool: FIFO per lane, lanes in parallel on a bounded number of threads, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from agent.pool import Abandoned, Stopped, TurnPool, check_abandoned


def test_one_lane_runs_in_order_and_lanes_run_in_parallel() -> None:
    pool = TurnPool(workers=4)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    running = threading.Semaphore(0)
    both = threading.Barrier(2, timeout=10)

    def job(key: str, i: int) -> None:
        if i == 0:
            both.wait()  # lane a's and lane b's first jobs are running at the same time, or this times out
        seen[key].append(i)
        running.release()

    for i in range(20):
        pool.submit("a", lambda i=i: job("a", i))
        pool.submit("b", lambda i=i: job("b", i))
    assert pool.wait_idle(30)
    assert seen == {"a": list(range(20)), "b": list(range(20))}
    pool.close()


def test_two_thousand_lanes_use_at_most_the_pool_size_in_threads() -> None:
    before = threading.active_count()
    pool = TurnPool(workers=8)
    peak = 0

    def job() -> None:
        nonlocal peak
        peak = max(peak, threading.active_count())

    futures = [pool.submit(("slack:T1", f"channel:C{i}"), job) for i in range(2000)]
    for f in futures:
        f.result(30)
    assert peak <= before + 8
    assert threading.active_count() <= before + 8
    pool.close()


def test_a_lane_submitting_to_itself_runs_at_once() -> None:
    pool = TurnPool(workers=1)
    inner = pool.submit("a", lambda: pool.submit("a", lambda: 42).result(5))
    assert inner.result(5) == 42
    pool.close()


def test_a_failing_job_keeps_the_lane_alive() -> None:
    pool = TurnPool(workers=2)
    bad = pool.submit("a", lambda: 1 / 0)
    good = pool.submit("a", lambda: "still here")
    with pytest.raises(ZeroDivisionError):
        bad.result(5)
    assert good.result(5) == "still here"
    pool.close()


def test_close_abandons_a_stuck_job_after_the_grace_and_refuses_new_work() -> None:
    pool = TurnPool(workers=2)
    started = threading.Event()
    outcome: list[str] = []

    def slow_turn() -> None:
        started.set()
        for _ in range(200):  # a model call taking its time, checked between steps as the loop does
            time.sleep(0.02)
            check_abandoned()
        outcome.append("committed")

    stuck = pool.submit("a", slow_turn)
    queued = pool.submit("a", lambda: outcome.append("queued ran"))
    assert started.wait(5)
    assert pool.close(grace=0.2) is False
    with pytest.raises(Abandoned):
        stuck.result(5)
    assert queued.cancelled()
    assert outcome == []
    with pytest.raises(Stopped):
        pool.submit("b", lambda: None)


def test_close_waits_for_work_inside_the_grace() -> None:
    pool = TurnPool(workers=2)
    done = pool.submit("a", lambda: time.sleep(0.1) or "ok")
    assert pool.close(grace=10) is True
    assert done.result(1) == "ok"
