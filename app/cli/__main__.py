"""`python -m app.cli`: the `cbrain` command."""

import sys

from app.cli import main

sys.exit(main())
