"""Copy generated tables and pictures from reports/ into the README and docs/ (`make docs`).

`make quantization` and `make bench` write only under reports/ (ignored by git), so they never
dirty a tracked file; this one explicit step puts their results where readers see them.

    python -m pipeline.report.docs
"""

import shutil
import sys

from pipeline.paths import Workspace
from pipeline.verdicts import replace_between_markers

# README marker name -> the generated markdown table under reports/
TABLES = {"quantization": "quantization.md", "benchmark": "benchmark.md"}
# Tables that live on a docs/ page: marker name -> (table under reports/, page)
PAGE_TABLES = {"gate_steadiness": ("gate_steadiness.md", "docs/gate.md")}
# picture under reports/ -> where the README shows it from
PICTURES = {"benchmark.png": "docs/benchmark.png"}


def generated_docs(workspace: Workspace) -> list[str]:
    """Copy every generated table and picture that exists; the tracked files it changed."""
    readme_path = workspace.root / "README.md"
    changed = []
    for marker, name in TABLES.items():
        table_path = workspace.reports_dir / name
        if not table_path.is_file():
            print(f"skipped the {marker} table: no reports/{name} (run `make {marker}` first)")
            continue
        before = readme_path.read_text(encoding="utf-8") if readme_path.exists() else None
        if not replace_between_markers(readme_path, marker, table_path.read_text("utf-8")):
            raise SystemExit(
                f"README.md has no <!-- {marker}:start --> ... <!-- {marker}:end --> markers; "
                "add them where the table belongs"
            )
        if readme_path.read_text(encoding="utf-8") != before:
            changed.append(f"README.md ({marker} table)")
    for marker, (name, page) in PAGE_TABLES.items():
        table_path, page_path = workspace.reports_dir / name, workspace.root / page
        if not table_path.is_file() or not page_path.is_file():
            print(f"skipped the {marker} table: no reports/{name} or no {page}")
            continue
        before = page_path.read_text(encoding="utf-8")
        if not replace_between_markers(page_path, marker, table_path.read_text("utf-8")):
            raise SystemExit(
                f"{page} has no <!-- {marker}:start --> ... <!-- {marker}:end --> markers"
            )
        if page_path.read_text(encoding="utf-8") != before:
            changed.append(f"{page} ({marker} table)")
    for name, destination in PICTURES.items():
        source, target = workspace.reports_dir / name, workspace.root / destination
        if not source.is_file():
            continue
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            changed.append(destination)
    print("updated: " + ", ".join(changed) if changed else "the docs are up to date")
    return changed


if __name__ == "__main__":
    generated_docs(Workspace.from_env())
    sys.exit(0)
