"""``python -m resattn.report``."""

import sys

from resattn.report.cli import main

sys.exit(main())
