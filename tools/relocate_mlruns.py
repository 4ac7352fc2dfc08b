"""After moving or copying a workspace (the project, ./demo): point its MLflow runs at its own mlruns/ again.

MLflow keeps every artifact location as an absolute path: with the SQLite store a relative location is resolved
against the working directory when the experiment is created, and each run copies its experiment's location when
it starts (runs.artifact_uri). A workspace moved elsewhere therefore still sends `mlflow ui` and the MLflow client
to the old folder for its artifacts (missing, or another copy's). This rewrites, in <workspace>/mlflow.db, every
location that lies in another directory's mlruns/ to <workspace>/mlruns:

    python -m tools.relocate_mlruns [WORKSPACE] [--dry-run]      # WORKSPACE: the folder holding mlflow.db (.)

A pipeline stage does the same by itself when it finds its experiment pointing elsewhere; this is for looking at
a moved workspace's runs (`mlflow ui`) before running any stage there.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from ednas_core.tracking import _db_lock, relocate_artifacts

    dry_run = "--dry-run" in argv
    args = [a for a in argv if a != "--dry-run"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m tools.relocate_mlruns [WORKSPACE] [--dry-run]", file=sys.stderr)
        return 2
    root = Path(args[0] if args else ".").resolve()
    try:
        with _db_lock(root):
            moved = relocate_artifacts(root, dry_run=dry_run)
    except (FileNotFoundError, ValueError) as err:
        print(f"relocate_mlruns: error: {err}", file=sys.stderr)
        return 1
    if not moved:
        print(f"relocate_mlruns: every artifact location of {root / 'mlflow.db'} is already in {root / 'mlruns'} "
              "(or not a local mlruns folder); nothing to do")
        return 0
    verb = "would point" if dry_run else "now point"
    for old, rows in moved.items():
        counts = ", ".join(f"{table}: {n}" for table, n in rows.items())
        print(f"relocate_mlruns: the artifact locations in {old} ({counts}) {verb} to {root / 'mlruns'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
