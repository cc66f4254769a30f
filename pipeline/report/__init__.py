"""The release report, and `make docs`, which writes the measured figures into the docs.

The report: sources (committed verdicts) -> figures -> tables and charts -> markdown and html
pages; `python -m pipeline.report` writes it. `report.docs` fills the README and docs/."""
