"""Tests of ``space``: the Gradio app and the command line."""
