"""``python -m space.cli``: the ``attribution-explorer`` command without its console script."""

import sys

from space.cli import main

sys.exit(main())
