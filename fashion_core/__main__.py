"""`python -m fashion_core`: see `fashion_core.cli`."""

import sys

from fashion_core.cli import main

sys.exit(main())
