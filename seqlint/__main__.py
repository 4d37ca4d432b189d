"""`python -m seqlint`, for environments where the console script is not on PATH."""

import sys

from seqlint.cli import main

sys.exit(main())
