"""Logs read well on a terminal and parse well everywhere else."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Literal

import pytest

from config.logging import configure_logging


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[io.StringIO], io.StringIO]]:
    """Swap stderr for a buffer; the root logger is put back as pytest had it afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def swap(buffer: io.StringIO) -> io.StringIO:
        monkeypatch.setattr("sys.stderr", buffer)
        return buffer

    yield swap
    root.handlers[:] = handlers
    root.setLevel(level)


def log_a_start() -> None:
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    logging.getLogger("teleconsult").info("serving", extra={"url": "http://127.0.0.1:8080"})


def test_a_terminal_gets_readable_lines_without_alembics_set_up(
    stderr: Callable[[io.StringIO], io.StringIO],
) -> None:
    out = stderr(Terminal())
    configure_logging("INFO")
    log_a_start()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("INFO    teleconsult: serving  url=http://127.0.0.1:8080")


def test_anything_else_gets_json_lines(stderr: Callable[[io.StringIO], io.StringIO]) -> None:
    out = stderr(io.StringIO())
    configure_logging("INFO")
    log_a_start()
    [entry] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (entry["msg"], entry["url"]) == ("serving", "http://127.0.0.1:8080")


@pytest.mark.parametrize(
    ("fmt", "buffer", "is_json"), [("json", Terminal, True), ("text", io.StringIO, False)]
)
def test_the_format_can_be_forced(
    stderr: Callable[[io.StringIO], io.StringIO],
    fmt: Literal["json", "text"],
    buffer: type[io.StringIO],
    is_json: bool,
) -> None:
    out = stderr(buffer())
    configure_logging("INFO", fmt)
    log_a_start()
    assert out.getvalue().startswith("{") is is_json


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_traceback_names_the_failure_but_never_says_what_it_carried(
    stderr: Callable[[io.StringIO], io.StringIO], fmt: Literal["json", "text"]
) -> None:
    out = stderr(io.StringIO())
    configure_logging("INFO", fmt)
    note, token = "Subjective: chest pain since Tuesday", "eyJhbGciOi.eyJzdWIi.c2ln"
    try:
        try:
            raise KeyError(note)
        except KeyError as exc:
            raise ValueError(token) from exc
    except ValueError:
        logging.getLogger("teleconsult").exception("signing failed")
    written = out.getvalue()
    assert note not in written and token not in written
    assert "builtins.KeyError (message withheld)" in written
    assert "builtins.ValueError (message withheld)" in written
    assert "signing failed" in written
