"""The release report: sources (committed verdicts) -> figures -> tables and charts ->
markdown and html pages. `python -m pipeline.report` writes it; `report.docs` fills the docs."""
