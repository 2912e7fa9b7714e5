"""Sub-commands of ``attribution-explorer`` beyond the built-in ones in :mod:`space.cli`, one module each.

A command module exposes ``add_parser(subparsers) -> argparse.ArgumentParser``: it adds the command's
parser (help, description, options; :func:`space.cli.add_model_arguments` for the model options) and
``set_defaults(handler=run)``, where ``run(args) -> int`` does the work and returns the exit status.
Register it with one line in :func:`space.cli.build_parser`. At the top the module imports only the
standard library and light modules; torch, Inseq, Gradio and Bokeh are imported inside ``run``, after the
arguments are checked (``tests/test_cli.py`` checks ``--help`` of every command imports none of them).
"""
