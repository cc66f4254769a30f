"""`python -m pipeline.report`: the release report for the candidate (see report.write)."""

import sys

from pipeline.report.write import main

sys.exit(main())
