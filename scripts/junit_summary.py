"""Print one line, ``tests: N passed, M failed[, K skipped]``, from JUnit XML files.

The files are pytest's (``--junitxml``) and Node's (``node --test --test-reporter=junit``):
both write one ``<testcase>`` per test. Arguments are ``PATH`` or ``PATH:EXIT_STATUS`` (one per
phase). A phase that failed
without any failed test case (nothing collected, a crash, a kill: its file may be missing)
counts as one failure, so the line never says ``0 failed`` for a failed run.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(path: Path) -> tuple[int, int, int]:
    """Passed, failed (failures and errors) and skipped test cases in one JUnit XML file."""
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(phases: list[str]) -> int:
    passed = failed = skipped = 0
    for phase in phases:
        name, _, status = phase.rpartition(":") if ":" in phase else (phase, "", "0")
        path = Path(name)
        try:
            p, f, s = count(path)
        except (OSError, ET.ParseError) as exc:
            print(f"junit_summary: {path}: {exc}", file=sys.stderr)
            p, f, s = 0, 0, 0
            status = status if status != "0" else "unknown"
        if f == 0 and status != "0":
            print(f"junit_summary: {path}: phase exit {status}, one failure", file=sys.stderr)
            f = 1
        passed, failed, skipped = passed + p, failed + f, skipped + s
    line = f"tests: {passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    sys.stderr.flush()
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
