"""How to load the run's model: plain data, so a Ray worker can load the same model on its own machine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from attribution.models import LoadedModel


@dataclass(frozen=True)
class ModelSpec:
    """The arguments of :func:`attribution.models.load_model` for a corpus run.

    ``device_map`` / ``max_memory`` / ``offload_folder`` place a model larger than one device with
    accelerate. ``threads`` sets torch's CPU threads in the process that loads it (None: torch's
    default); Ray workers use their CPU reservation instead.
    """

    model_id: str
    revision: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    device_map: str | dict[str, Any] | None = None
    max_memory: dict[str, Any] | None = None
    offload_folder: str | None = None
    threads: int | None = None
    trust_remote_code: bool | None = field(default=None)

    def defining(self) -> dict[str, Any]:
        """What changes the numbers (a resumed run must match it); placement and threads do not."""
        return {"model_id": self.model_id, "revision": self.revision, "dtype": self.dtype}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load(self) -> LoadedModel:
        import torch

        from attribution.models import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        return load_model(
            self.model_id,
            device=self.device,
            dtype=self.dtype,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            device_map=self.device_map,
            max_memory=self.max_memory,
            offload_folder=self.offload_folder,
            cache=None,
        )
