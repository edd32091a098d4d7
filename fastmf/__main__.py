"""``python -m fastmf``: the same as the ``fastmf`` command."""

import sys

from fastmf.cli import main

sys.exit(main())
