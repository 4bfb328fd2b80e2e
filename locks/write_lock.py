"""A pip installation report (``pip install --dry-run --report``) as a lock file: ``name==version`` per
line, sorted, without the editable (local) projects. Used by ``locks/refresh.sh``."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path


def pins(report: dict) -> list[str]:
    found = []
    for item in report["install"]:
        if item.get("download_info", {}).get("dir_info", {}).get("editable"):
            continue
        meta = item["metadata"]
        found.append(f"{meta['name']}=={meta['version']}")
    return sorted(found, key=str.lower)


def main(report_path: str, lock_path: str, what: str) -> None:
    report = json.loads(Path(report_path).read_text())
    python = ".".join(platform.python_version_tuple()[:2])
    header = [
        f"# Lock for {what}.",
        f"# Resolved by locks/refresh.sh on Python {python}, {platform.machine()} ({platform.system()}).",
        "# Do not edit by hand: run `bash locks/refresh.sh` (docs/installing.md).",
    ]
    Path(lock_path).write_text("\n".join(header + pins(report)) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
