"""Reading exported pages and snippets: what a block's script draws."""

from __future__ import annotations

import json
import re


def figure_json(page: str) -> dict:
    """What a block's script draws: its Bokeh document, root, bundles and dark colours."""
    [match] = re.findall(r'<script type="application/json" data-ae="figure">(.*?)</script>', page, re.S)
    return json.loads(match)
