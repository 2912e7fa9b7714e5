"""The command line's own commands, one module each (see :mod:`space.command` for what a command module is).

Listed, in help order, in :data:`space.cli.BUILT_IN`. Each imports only the standard library and light
modules at the top (``tests/space/cli/test_cli.py`` checks that ``--help`` of every command imports no torch, Inseq,
Gradio or Bokeh), and nothing from the app (:mod:`space.gradio_app`).
"""
