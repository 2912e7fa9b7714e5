"""The app's view bookkeeping without a browser: which request a view shows, and example results kept."""

from __future__ import annotations

import threading

import pytest

from space.gradio_app import build
from space.gradio_app.config import SpaceConfig
from space.gradio_app.examples import graph_examples
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
    kept.offer("graph", [row])
    kept.offer("attribute", [row])
    assert kept.get("graph", row, lambda: compute(*row)) == ("result", *row)
    assert kept.get("graph", list(row), lambda: compute(*row)) == ("result", *row)
    assert len(calls) == 1 and len(kept) == 1
    kept.get("attribute", row, lambda: compute(*row))  # another view: its own result
    assert len(calls) == 2

    off = ExampleResults("off")
    off.offer("graph", [row])
    off.get("graph", row, lambda: compute(*row))
    off.get("graph", row, lambda: compute(*row))
    assert len(calls) == 4 and len(off) == 0


def test_only_the_offered_example_rows_are_kept_whatever_inputs_the_examples_event_gets() -> None:
    # Any client can send the examples' event (a plain HTTP request) with inputs of its own: each would have
    # been kept for the app's lifetime, so memory grew with every distinct input sent.
    calls: list[str] = []

    def compute(text: str) -> str:
        calls.append(text)
        return f"result of {text}"

    kept = ExampleResults("lazy")
    kept.offer("graph", [["example one"], ["example two"]])
    for i in range(50):
        assert kept.get("graph", [f"sent {i}"], lambda i=i: compute(f"sent {i}")) == f"result of sent {i}"
    assert len(kept) == 0 and len(calls) == 50  # computed each time like any request, none kept
    assert kept.get("attribute", ["example one"], lambda: compute("example one")) == "result of example one"
    assert len(kept) == 0  # an example row of another view is not one of this view's rows
    for _ in range(3):
        for row in (["example one"], ["example two"]):
            assert kept.get("graph", row, lambda r=row: compute(r[0])) == f"result of {row[0]}"
    assert len(kept) == 2 and len(calls) == 53  # the offered rows: computed once each, then kept


def test_the_app_offers_its_example_rows_so_their_results_are_kept(monkeypatch) -> None:
    # Only offered rows are kept: an app whose tabs forgot to offer theirs would recompute every example click.
    made: list[ExampleResults] = []

    class Recorded(ExampleResults):
        def __init__(self, mode: str) -> None:
            super().__init__(mode)
            made.append(self)

    monkeypatch.setattr(build.views, "ExampleResults", Recorded)
    model = "tiny-ioi-gpt2"
    build.build_app(SpaceConfig(models=(model,), default_model=model, cache_examples="lazy"), hub_reachable=False)
    (examples,) = made
    row = graph_examples((model,))[0]
    calls: list[int] = []
    for _ in range(2):
        examples.get("graph", row, lambda: calls.append(1))
    assert len(calls) == 1 and len(examples) == 1


def test_a_failed_example_is_not_kept() -> None:
    kept = ExampleResults("lazy")
    kept.offer("graph", [["x"]])

    def fail() -> None:
        raise ValueError("no model")

    for _ in range(2):
        with pytest.raises(ValueError, match="no model"):
            kept.get("graph", ["x"], fail)
    assert len(kept) == 0
