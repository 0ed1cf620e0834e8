"""The log scan itself: a run whose logs carry a secret fails, a clean one passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LEAKY = """
import logging
from tests.log_scan import register_secret

def test_logs_a_chat_message():
    text = "the rash spread to both arms overnight"
    register_secret(text)
    logging.getLogger("signaling.events").info("chat", extra={"text": text})

def test_logs_a_token_in_a_traceback():
    try:
        raise ValueError("fine")
    except ValueError:
        logging.getLogger("x").warning("token %s", "eyJhbGciOiJI.eyJzdWIiOiJk.sig")
"""

CLEAN = """
import logging

def test_logs_only_ids():
    logging.getLogger("signaling.events").info("chat", extra={"consult_id": "c-1"})
"""


def run(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on one test file with the log scan, as the suite does."""
    test = tmp_path / "test_sample.py"
    test.write_text(source)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.log_scan", str(test)]
    command += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=False
    )


def test_a_run_whose_logs_carry_chat_text_or_a_token_fails(tmp_path: Path) -> None:
    result = run(tmp_path, LEAKY)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "2 passed" in result.stdout
    assert "2 log lines carried a secret" in result.stdout
    assert "test_logs_a_chat_message [signaling.events]: the rash spr…" in result.stdout
    assert "overnight" not in result.stdout


def test_a_run_whose_logs_carry_no_secret_passes(tmp_path: Path) -> None:
    result = run(tmp_path, CLEAN)
    assert result.returncode == 0, result.stdout
    assert "no secret in any log line" in result.stdout
