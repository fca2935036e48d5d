"""``python -m kdteach``: the same command as ``kdteach`` (see :mod:`kdteach.cli`)."""

import sys

from .cli import main

sys.exit(main())
