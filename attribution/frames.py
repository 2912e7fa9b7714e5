"""Results as pandas DataFrames: what every result's ``to_dataframe()`` builds on.

Long ("tidy") frames, one row per thing a researcher plots or aggregates (a scored token pair, an edge, a
map cell, a prediction, a record): ``df.pivot(...)`` gives a matrix back, ``df.groupby(...)`` a summary. A
token appears twice: as the text it stands for (``token``: ``" Mary"``, from
:func:`~attribution.tokenizer_style.token_text`) and as its tokenizer spelled it (``token_raw``: ``"ĠMary"``).
pandas is imported when a frame is made: reading results does not need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attribution.errors import InvalidInputError
from attribution.tokenizer_style import TokenizerStyle, token_text

if TYPE_CHECKING:
    import pandas as pd


def data_frame(columns: Mapping[str, Sequence[Any]], *, integers: Sequence[str] = ()) -> pd.DataFrame:
    """A DataFrame of equally long ``columns`` (in their order); ``integers`` may hold None (pandas ``Int64``)."""
    try:
        import pandas as pd
    except ImportError:
        raise InvalidInputError("to_dataframe() needs pandas: pip install pandas") from None
    frame = pd.DataFrame({name: list(values) for name, values in columns.items()})
    return frame.astype({name: "Int64" for name in integers})


def token_columns(name: str, tokens: Sequence[str | None], style: TokenizerStyle) -> dict[str, list[str | None]]:
    """``{name: texts, name_raw: tokens}`` for a column of tokens (None stays None: no token there)."""
    return {
        name: [None if token is None else token_text(token, style) for token in tokens],
        f"{name}_raw": list(tokens),
    }
