"""The app's view bookkeeping without a browser: which request a view shows, and example results kept."""

from __future__ import annotations

import threading

import pytest

from space.gradio_app.views import UNTRACKED, ExampleResults, LatestRequests


def test_the_latest_request_of_a_view_wins_per_session() -> None:
    latest = LatestRequests()
    first = latest.begin("alice", "graph")
    assert not latest.superseded("alice", "graph", first)
    second = latest.begin("alice", "graph")
    assert latest.superseded("alice", "graph", first)  # an older request's result must not be shown
    assert not latest.superseded("alice", "graph", second)
    other_view = latest.begin("alice", "attribute")
    other_session = latest.begin("bob", "graph")
    assert not latest.superseded("alice", "graph", second)  # other views and sessions do not interfere
    assert not latest.superseded("alice", "attribute", other_view)
    assert not latest.superseded("bob", "graph", other_session)
    assert not latest.superseded("carol", "graph", UNTRACKED)  # API calls carry no ticket: always shown
    assert not latest.superseded("alice", "graph", UNTRACKED)


def test_forgotten_sessions_are_bounded_and_then_shown_anything() -> None:
    latest = LatestRequests(max_entries=3)
    tickets = [latest.begin(f"session {i}", "graph") for i in range(5)]
    assert len(latest._latest) == 3
    assert not latest.superseded("session 0", "graph", tickets[0] + 100)  # forgotten: nothing to compare with
    assert latest.superseded("session 4", "graph", tickets[3])


def test_tickets_are_unique_across_threads() -> None:
    latest = LatestRequests()
    tickets: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(200):
            ticket = latest.begin("alice", "graph")
            with lock:
                tickets.append(ticket)

    workers = [threading.Thread(target=take) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(tickets)) == 800


def test_example_results_are_computed_once_unless_off() -> None:
    calls: list[tuple] = []

    def compute(*inputs) -> tuple:
        calls.append(inputs)
        return ("result", *inputs)

    kept = ExampleResults("lazy")
    row = ["tiny-ioi-gpt2", "When Mary and John", 0.04, False, "-1"]
    assert kept.get("graph", row, lambda: compute(*row)) == ("result", *row)
    assert kept.get("graph", list(row), lambda: compute(*row)) == ("result", *row)
    assert len(calls) == 1 and len(kept) == 1
    kept.get("attribute", row, lambda: compute(*row))  # another view: its own result
    assert len(calls) == 2

    off = ExampleResults("off")
    off.get("graph", row, lambda: compute(*row))
    off.get("graph", row, lambda: compute(*row))
    assert len(calls) == 4 and len(off) == 0


def test_a_failed_example_is_not_kept() -> None:
    kept = ExampleResults("lazy")

    def fail() -> None:
        raise ValueError("no model")

    for _ in range(2):
        with pytest.raises(ValueError, match="no model"):
            kept.get("graph", ["x"], fail)
    assert len(kept) == 0
