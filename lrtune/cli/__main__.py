import sys

from lrtune.cli import main

sys.exit(main())
