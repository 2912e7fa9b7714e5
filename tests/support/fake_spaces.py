"""A stand-in for the ``spaces`` package on ZeroGPU that records what the app asks of it.

``spaces.GPU(duration=...)`` decorates a function; on ZeroGPU each call asks for a GPU for ``duration``
seconds (a number, or a function of the call's arguments) and runs the function in a worker process, to which
it pickles the arguments. The fake does the same in this process: it records each decorated function, each
call's requested seconds, sends the arguments through ``pickle`` (an argument the real worker could not
receive fails here too), and says which thread is inside a decorated call, so a test can check that every
model forward pass happens inside one.
"""

from __future__ import annotations

import functools
import pickle
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


@dataclass
class GpuCall:
    function: str
    seconds: int


@dataclass
class FakeSpaces:
    """What the app asked of ``spaces``; :meth:`module` is the importable package."""

    decorated: list[str] = field(default_factory=list)
    calls: list[GpuCall] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)

    @property
    def inside(self) -> bool:
        """Whether the current thread is running a decorated function."""
        return getattr(self._local, "depth", 0) > 0

    def GPU(self, task: Any = None, *, duration: Any = None, size: str | None = None) -> Any:
        def decorate(function: Any) -> Any:
            name = getattr(function, "__qualname__", repr(function))
            self.decorated.append(name)

            @functools.wraps(function)
            def on_gpu(*args: Any, **kwargs: Any) -> Any:
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.calls.append(GpuCall(name, seconds))
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # what reaches the worker process
                self._local.depth = getattr(self._local, "depth", 0) + 1
                try:
                    return function(*args, **kwargs)
                finally:
                    self._local.depth -= 1

            return on_gpu

        return decorate if task is None else decorate(task)

    def module(self) -> ModuleType:
        package = ModuleType("spaces")
        package.GPU = self.GPU  # type: ignore[attr-defined]
        return package
