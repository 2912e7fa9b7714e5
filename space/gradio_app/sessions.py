"""Gradio's per-session state without the deep-link copies that made server memory grow with every request.

Gradio keeps one ``SessionState`` per session, and each raw API request (``/gradio_api/call/…``)
is a session of its own. Besides what events need (``gr.State`` values, components an event
updated), each state keeps a copy for deep links: the config of every component (~270 KB for
this app) and the latest value each request of the session sent or got back (an export's preview
page: ~2.6 MB). Only Gradio's ``/gradio_api/deep_link`` route reads that copy, and this app offers
no deep link. With ``max_sessions`` (1000) sessions kept, the copies grew server memory by ~3 MB
per export and ~0.3 MB per other request, towards several GB. Here sessions keep no such copy,
so a session costs ~10 KB plus the components its events updated, and ``max_sessions`` bounds
the total.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.state_holder import SessionState, StateHolder


class _KeepsNothing(dict):
    """A dict that drops what is written into it (Gradio writes deep-link copies there)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


class SessionWithoutDeepLink(SessionState):
    """A session's state for running events, with no copy of component configs and values."""

    def __init__(self, blocks: gr.Blocks) -> None:
        super().__init__(blocks)
        self.config_values = _KeepsNothing()

    def _update_config(self, key: int) -> None:
        """Deep links only: not kept."""

    def _update_value_in_config(self, key: int, value: Any) -> None:
        """Deep links only: not kept."""


class SessionsWithoutDeepLinks(StateHolder):
    """Gradio's session store (least recently used dropped beyond its capacity) of :class:`SessionWithoutDeepLink`."""

    def __getitem__(self, session_id: str) -> SessionState:
        if session_id not in self.session_data:
            self.session_data[session_id] = SessionWithoutDeepLink(self.blocks)
        return super().__getitem__(session_id)


def keep_no_deep_link_copies(demo: gr.Blocks) -> None:
    """Make ``demo``'s server store sessions without deep-link copies, from its start-up on (call before launch).

    Gradio creates the session store with the server, at launch; ``demo``'s start-up events run
    after that and before the queue serves any event.
    """

    async def install() -> None:
        sessions = SessionsWithoutDeepLinks()
        sessions.set_blocks(demo)  # takes demo.state_session_capacity, and becomes demo.state_holder
        demo.server_app.state_holder = sessions

    demo.extra_startup_events.insert(0, install)
