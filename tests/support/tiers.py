"""What the fast tier (``make quick``) leaves to the full suite: the family matrix's repeats.

Many checks run once per architecture (22 families and 7 further layouts). The full suite runs every one;
the fast tier runs each check on the representative families below and leaves the other parameters to
the full suite through the ``matrix`` marker. Together they cover what a change usually breaks first:
learned positions with biases and Conv1D weights (GPT-2), RMSNorm, rotary positions and a gated FFN
(Llama), a post-norm encoder-decoder with cross-attention (Marian) and relative position buckets without
biases (T5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

REPRESENTATIVE_FAMILIES = frozenset({"gpt2", "llama", "marian", "t5"})


def in_the_fast_tier(family: str) -> bool:
    return family in REPRESENTATIVE_FAMILIES


def across_families(values: Iterable[Any], family_of=lambda value: value) -> list[Any]:
    """``values`` as parameters, those whose family is not representative marked ``matrix``.

    ``family_of`` reads a value's family (the value itself by default); the ids stay as pytest makes them.
    """
    return [
        value if in_the_fast_tier(family_of(value)) else pytest.param(value, marks=pytest.mark.matrix)
        for value in values
    ]
