"""The runbook parser: which fenced blocks run, how, and which runbooks are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runbook_parser import Block, RunbookSyntaxError, parse_runbook, read_runbook

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"

SAMPLE = """\
# Redis down

Intro with `inline code` and ```an inline span``` on one line.

## Diagnose

```sh exit=1
delaycast verify
```

```text
FAIL redis  cannot connect
```

## Recover

```sh
delaycast stack up
delaycast verify
```

~~~~sh background
delaycast worker
~~~~

```
no language: sample
```
"""


def test_every_fenced_block_is_found_with_its_line_section_and_code():
    blocks = parse_runbook(SAMPLE)
    assert [(b.language, b.line, b.section) for b in blocks] == [
        ("sh", 7, "Diagnose"),
        ("text", 11, "Diagnose"),
        ("sh", 17, "Recover"),
        ("sh", 22, "Recover"),
        ("", 26, "Recover"),
    ]
    assert blocks[2].code == "delaycast stack up\ndelaycast verify\n"


def test_only_sh_blocks_run_and_their_info_string_sets_exit_and_background():
    blocks = parse_runbook(SAMPLE)
    assert [b.runs for b in blocks] == [True, False, True, True, False]
    assert [(b.expected_exit, b.background) for b in blocks if b.runs] == [
        (1, False),
        (0, False),
        (None, True),
    ]


def test_a_plain_sh_block_must_exit_zero():
    (block,) = parse_runbook("```sh\ntrue\n```\n")
    assert block == Block("sh", "true\n", 1, "", expected_exit=0, background=False)


def test_exit_status_may_be_any_byte_value():
    assert parse_runbook("```sh exit=255\nfalse\n```\n")[0].expected_exit == 255
    assert parse_runbook("```sh   exit=2  \nfalse\n```\n")[0].expected_exit == 2


def test_a_longer_fence_contains_shorter_ones_and_headings_inside_are_not_sections():
    text = "## Outer\n````text\n```sh\n# not a heading\n```\n````\n```sh\necho ok\n```\n"
    blocks = parse_runbook(text)
    assert [(b.language, b.line, b.section) for b in blocks] == [
        ("text", 2, "Outer"),
        ("sh", 7, "Outer"),
    ]
    assert blocks[0].code == "```sh\n# not a heading\n```\n"


def test_a_fence_of_the_other_character_does_not_close_a_block():
    blocks = parse_runbook("~~~sh\necho a\n```\necho b\n~~~\n")
    assert blocks[0].code == "echo a\n```\necho b\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```sh\necho a\n", "line 1: the block opened here is never closed"),
        ("\n```sh exit 1\nfalse\n```\n", "line 2: unknown option 'exit'"),
        ("```sh exit=256\nfalse\n```\n", "unknown option 'exit=256'"),
        ("```sh exit=-1\nfalse\n```\n", "unknown option 'exit=-1'"),
        ("```sh exit=1 exit=2\nfalse\n```\n", "'exit' given twice"),
        ("```sh backgrund\nsleep 1\n```\n", "unknown option 'backgrund'"),
        ("```sh background exit=0\nsleep 1\n```\n", "a background block has no exit status"),
        ("```sh\n\n```\n", "line 1: an empty `sh` block"),
    ],
)
def test_runbooks_that_cannot_run_as_written_are_refused_with_the_line(text, message):
    with pytest.raises(RunbookSyntaxError, match=message.replace("(", r"\(")):
        parse_runbook(text)


def test_options_of_other_languages_are_not_checked():
    (block,) = parse_runbook("```text exit 1 whatever\nFAIL\n```\n")
    assert (block.runs, block.expected_exit) == (False, None)


def test_read_runbook_names_the_file_in_errors(tmp_path):
    path = tmp_path / "broken.md"
    path.write_text("```sh\nnever closed\n")
    with pytest.raises(RunbookSyntaxError, match=r"broken\.md: line 1"):
        read_runbook(path)


def test_every_runbook_in_the_repository_parses_and_has_commands_to_run():
    paths = sorted(RUNBOOKS.glob("*.md"))
    assert len(paths) >= 11
    for path in paths:
        blocks = read_runbook(path)
        if path.name != "README.md":
            assert any(b.runs for b in blocks), f"{path.name} has no ```sh block"
