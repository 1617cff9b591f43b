"""`python -m carepath ...`: the same as the installed `carepath` command."""

import sys

from .cli import main

sys.exit(main())
