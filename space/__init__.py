"""Wiring: the Gradio app and the command line, two packages with one job each, over the library.

- :mod:`space.gradio_app`: the app (a Hugging Face Space), one module per tab pairing its layout with
  its handlers; ``space/app.py`` is the Space's entry file and ``space/config.json`` its operator config.
- :mod:`space.cli`: ``attribution-explorer``, one module per command (:mod:`space.cli.commands`).

Neither imports the other. The command line runs the app through its command registry: the app
declares its ``serve`` command in the entry-point group ``attribution_explorer.commands``, the way a
third party adds a command. What both need is below them: the library (``attribution``: e.g. root-token
parsing in :mod:`attribution.contributions.roots`, result kinds, request caps), the exporters, and two
small modules here, :mod:`space.command` (what a command is and how one runs: exit statuses, one-line
errors) and :mod:`space.distribution` (our version and who else provides our import names).
``tests/project/test_import_graph.py`` checks all of this from the modules' own imports.
"""
