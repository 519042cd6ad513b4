"""The fenced blocks of a runbook, and what the runbook test does with each.

Fences follow CommonMark: three or more backticks or tildes, indented at most three spaces,
closed by a line of the same character, at least as long, with nothing else on it. The info
string's first word is the language. Only ``sh`` blocks are run::

    ```sh              runs in `bash -euo pipefail`; must exit 0
    ```sh exit=N       must exit with N (a diagnostic that detects an outage)
    ```sh background   a long-running process (worker, api), stopped when the runbook ends

Any other block (```text, ```json, no language) is sample output and is not run. A runbook with
a typo in an ``sh`` info string, or an unclosed fence, is refused with its line number: a block
silently skipped would be a command nobody tests.

>>> [b.code for b in parse_runbook("# T\\n```sh\\necho hi\\n```\\n")]
['echo hi\\n']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUN_LANGUAGE = "sh"
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(?P<marks>#{1,6})\s+(?P<title>.*?)\s*#*\s*$")
_EXIT = re.compile(r"^exit=(?P<code>\d{1,3})$")


class RunbookSyntaxError(ValueError):
    """A runbook the harness cannot run as written; the message names the line."""


@dataclass(frozen=True)
class Block:
    """One fenced block.

    ``line``: 1-based line of its opening fence. ``section``: the title of the nearest heading
    above it ('' before the first). ``expected_exit``: None for blocks that are not run or that
    run in the background.
    """

    language: str
    code: str
    line: int
    section: str
    expected_exit: int | None = None
    background: bool = False

    @property
    def runs(self) -> bool:
        return self.language == RUN_LANGUAGE


def _options(info: str, line: int) -> tuple[int | None, bool]:
    """(expected exit, background) of an ``sh`` block from the words after the language."""
    expected: int | None = 0
    background = False
    seen: set[str] = set()
    for word in info.split()[1:]:
        key = word.split("=", 1)[0]
        if key in seen:
            raise RunbookSyntaxError(f"line {line}: {key!r} given twice in {info!r}")
        seen.add(key)
        match = _EXIT.match(word)
        if word == "background":
            background = True
        elif match and int(match["code"]) <= 255:
            expected = int(match["code"])
        else:
            raise RunbookSyntaxError(
                f"line {line}: unknown option {word!r} in {info!r}; "
                "expected `exit=N` (0-255) or `background`"
            )
    if background and "exit" in seen:
        raise RunbookSyntaxError(f"line {line}: a background block has no exit status to expect")
    return (None if background else expected), background


def parse_runbook(text: str) -> list[Block]:
    """Every fenced block of ``text``, in order."""
    blocks: list[Block] = []
    section = ""
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i].rstrip("\r\n"))
        if opening is None:
            heading = _HEADING.match(lines[i].rstrip("\r\n"))
            if heading:
                section = heading["title"]
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        if fence[0] == "`" and "`" in info:
            i += 1  # CommonMark: not a fence (an inline code span), just text
            continue
        start = i + 1
        end = start
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end].rstrip("\r\n")):
            end += 1
        if end == len(lines):
            raise RunbookSyntaxError(f"line {start}: the block opened here is never closed")
        language = info.split()[0] if info else ""
        code = "".join(lines[start:end])
        expected, background = (None, False)
        if language == RUN_LANGUAGE:
            expected, background = _options(info, start)
            if not code.strip():
                raise RunbookSyntaxError(f"line {start}: an empty `sh` block")
        blocks.append(Block(language, code, start, section, expected, background))
        i = end + 1
    return blocks


def read_runbook(path: Path) -> list[Block]:
    try:
        return parse_runbook(path.read_text())
    except RunbookSyntaxError as exc:
        raise RunbookSyntaxError(f"{path}: {exc}") from None
