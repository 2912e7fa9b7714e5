"""Stand-ins that make time and failures deterministic: a clock that ticks per reading, Inseq calls that fail."""

from __future__ import annotations


class TickingClock:
    """``time.monotonic`` stand-in: every reading is one second after the previous one."""

    def __init__(self) -> None:
        self.now = 0.0
        self.readings = 0

    def __call__(self) -> float:
        self.now += 1.0
        self.readings += 1
        return self.now


def failing_inseq_calls(monkeypatch, error_for) -> list[list[str]]:
    """Make every Inseq call raise ``error_for(texts)`` where that is not None; returns the batches called."""
    from attribution import inseq_runner

    original, calls = inseq_runner._run, []

    def run(loaded, inseq_model, spec, texts, *args, **kwargs):
        calls.append(list(texts))
        error = error_for(texts)
        if error is not None:
            raise error
        return original(loaded, inseq_model, spec, texts, *args, **kwargs)

    monkeypatch.setattr(inseq_runner, "_run", run)
    return calls
