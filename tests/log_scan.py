"""A pytest plugin: no log line of the whole run may carry a secret a test used.

Every log record of the test process (the in-process servers of the host phase) is formatted as
the server formats it and checked as it is written; the log files of server subprocesses (the
webrtc phase's ``teleconsult serve``) are checked at the end of the session. Secrets are the
clinical and chat text tests register (:func:`register_secret`), and anything shaped like a JWT
or an SDP's ICE password line. A finding fails the session and names the test and logger.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.logging import NOISY, TextFormatter

#: Always secret: a JWT (its header and claims both start ``{"`` → ``eyJ``) and ICE passwords.
SHAPES = re.compile(r"eyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*|ice-pwd")
#: Registered secrets shorter than this are too common to look for (names, single words).
MIN_SECRET_LENGTH = 8


@dataclass(frozen=True)
class Finding:
    """A log line that carried a secret.

    :param where: the test (or log file) that wrote it.
    :param logger: the logger's name, or the file's line number.
    :param secret: what was found, shortened so the report does not repeat it whole.
    """

    where: str
    logger: str
    secret: str


class _Scanner:
    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.files: set[Path] = set()
        self.findings: list[Finding] = []
        self.test = "(collection)"
        # What the workers of an xdist run checked (only the controller counts these).
        self.worker_secrets = 0
        self.worker_files = 0

    def add(self, texts: Iterable[str]) -> None:
        # A token is found by its shape wherever it appears whole: only other secrets are kept
        # (the suite mints thousands of tokens; one regex of them all cost minutes to compile).
        self.secrets |= {
            t for t in texts if len(t) >= MIN_SECRET_LENGTH and not SHAPES.fullmatch(t)
        }

    def found(self, text: str) -> list[str]:
        return SHAPES.findall(text) + [secret for secret in self.secrets if secret in text]

    def check(self, where: str, logger: str, text: str) -> None:
        for hit in self.found(text):
            self.findings.append(Finding(where, logger, hit[:12] + "…"))


_SCANNER = _Scanner()


def register_secret(*texts: str) -> None:
    """Name text that must never be logged (clinical text, chat, a token minted by a test)."""
    _SCANNER.add(texts)


def register_sdp(sdp: str) -> str:
    """Name the ICE password of an SDP as a secret; the SDP, unchanged."""
    register_secret(*re.findall(r"a=ice-pwd:(\S+)", sdp))
    return sdp


def register_log_file(path: Path) -> None:
    """Check a server subprocess's log file at the end of the session."""
    _SCANNER.files.add(path)


class _ScanHandler(logging.Handler):
    """Checks each record as the server's own formatter would write it."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(TextFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted is logging's own bug report
            text = str(record.msg)
        _SCANNER.check(_SCANNER.test, record.name, text)


def _file_text(line: str) -> str:
    """A JSON log line's values as written (non-ASCII unescaped), or the line itself."""
    try:
        return json.dumps(json.loads(line), ensure_ascii=False)
    except ValueError:
        return line


def pytest_sessionstart(session: pytest.Session) -> None:
    """Watch the root logger at the server's level (INFO, the chatty libraries at WARNING)."""
    root = logging.getLogger()
    root.addHandler(_ScanHandler())
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for name in NOISY:
        if logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(logging.WARNING)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """Name the running test in findings (and watch again if a test reset the handlers)."""
    root = logging.getLogger()
    if not any(isinstance(handler, _ScanHandler) for handler in root.handlers):
        root.addHandler(_ScanHandler())
    _SCANNER.test = item.nodeid
    try:
        return (yield)
    finally:
        _SCANNER.test = "(between tests)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Check the registered log files; fail the session on any finding.

    Under pytest-xdist each worker scans its own tests and files and hands its findings to the
    controller (``workeroutput``), which reports them and fails the run.
    """
    for path in sorted(_SCANNER.files):
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            _SCANNER.check(str(path), f"line {number}", _file_text(line))
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["log_scan"] = {
            "findings": [vars(finding) for finding in _SCANNER.findings],
            "secrets": len(_SCANNER.secrets),
            "files": len(_SCANNER.files),
        }
    if _SCANNER.findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """The controller of an xdist run: collect a finished worker's findings."""
    report = getattr(node, "workeroutput", {}).get("log_scan")
    if report is None:
        return
    _SCANNER.findings.extend(Finding(**finding) for finding in report["findings"])
    _SCANNER.worker_secrets += report["secrets"]
    _SCANNER.worker_files += report["files"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report each finding: where, which logger, the secret's start."""
    findings = _SCANNER.findings
    terminalreporter.section("log scan")
    if not findings:
        terminalreporter.write_line(
            f"no secret in any log line "
            f"({len(_SCANNER.secrets) + _SCANNER.worker_secrets} registered secrets, "
            f"{len(_SCANNER.files) + _SCANNER.worker_files} server log files, "
            "JWT and ice-pwd shapes)"
        )
        return
    terminalreporter.write_line(f"{len(findings)} log lines carried a secret:", red=True)
    for finding in findings[:50]:
        terminalreporter.write_line(f"  {finding.where} [{finding.logger}]: {finding.secret}")
