"""Tests of ``space.gradio_app``: the app's tabs, handlers, config and hardening."""
