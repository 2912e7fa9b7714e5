"""The Hugging Face Spaces entry file (``app_file: space/app.py``): ``python space/app.py [--host --port --config]``.

It runs the app's ``serve`` command (:mod:`space.gradio_app.serve`; also ``attribution-explorer serve``):
the options are parsed, and ``--help`` answered, before Gradio is imported. The app itself is the package
:mod:`space.gradio_app`.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # make `space` importable from a checkout
    from space.gradio_app.serve import main

    sys.exit(main(sys.argv[1:]))
