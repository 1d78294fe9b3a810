"""The busy-aware batch wait's bookkeeping (its effect in a Serve replica: tests/integration/test_batching.py)."""

from __future__ import annotations

import time

from tripwire.serving.batching import BusyAwareBatchWait


class Method:
    """Stands in for a bound ``@serve.batch`` method: only its wait setter is used."""

    wait = None

    def set_batch_wait_timeout_s(self, value):
        self.wait = value


def test_wait_follows_running_batches_is_capped_and_never_below_the_configured_one():
    method = Method()
    wait = BusyAwareBatchWait(method, idle_wait_s=0.002, max_wait_s=0.05)
    assert method.wait == 0.002
    with wait.running():
        assert method.wait == 0.002  # nothing measured yet
        time.sleep(0.08)
    assert method.wait == 0.002 and wait.busy_wait_s == 0.05  # idle again; the busy wait is capped
    with wait.running():
        assert method.wait == 0.05
        with wait.running():
            pass
        assert method.wait == wait.busy_wait_s  # one batch still runs: stay busy
    assert wait.running_batches == 0 and method.wait == 0.002


def test_expected_run_time_is_a_moving_average():
    wait = BusyAwareBatchWait(Method(), max_wait_s=1.0)
    with wait.running():
        time.sleep(0.02)
    first = wait.expected_run_s
    with wait.running():
        time.sleep(0.06)
    assert first < wait.expected_run_s < 0.06
