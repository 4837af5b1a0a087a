"""``python -m lrtune``: the ``lrtune`` command."""

import sys

from lrtune.cli import main

sys.exit(main())
