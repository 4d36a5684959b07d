"""The README quotes measurements that a benchmark script wrote, never numbers typed or kept from older runs.

Every decimal number in README.md's prose and tables (code, inline code and comments aside) must be, up to the
README's rounding, a number in a results file under benchmarks/ (the ``*.md`` files the scripts write and the raw
``*.jsonl`` rows; NOTES.md is a hand-kept log, so it does not count). A run that replaces a results file then
fails this test until the README quotes the new numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Decimals that are not measurements, each with the reason.
NOT_MEASUREMENTS = {"2105.15203": "the SegFormer paper's arXiv id"}
#: README sections whose numbers another test checks against the code.
CHECKED_ELSEWHERE = {"Presets and parameter counts": "tests/models/test_param_count.py"}

DECIMAL = re.compile(r"(?<![\w.\-/])\d+\.\d+(?![\d.])")


def readme_prose(text: str) -> list[tuple[int, str]]:
    """(line number, text) of README lines outside code blocks and the CHECKED_ELSEWHERE sections, with inline
    code and HTML comments blanked."""
    lines, in_code, skipped = [], False, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if line.startswith("## "):
            skipped = line[3:].strip() in CHECKED_ELSEWHERE
        if in_code or skipped:
            continue
        line = re.sub(r"<!--.*?-->|`[^`]*`", " ", line)
        lines.append((number, re.sub(r"(?<=\d),(?=\d{3})", "", line)))
    return lines


def results_values() -> list[float]:
    files = [p for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".md", ".jsonl") and p.name != "NOTES.md"]
    text = re.sub(r"(?<=\d),(?=\d{3})", "", " ".join(p.read_text() for p in files))
    return [float(v) for v in re.findall(r"\d+\.\d+", text)]


def is_rounding_of_one(token: str, values: list[float]) -> bool:
    """Whether ``token`` (e.g. "1.55") is one of ``values`` rounded to its decimals.

    >>> is_rounding_of_one("1.55", [1.5512, 3.0]), is_rounding_of_one("1.6", [1.5512]), is_rounding_of_one("1.5", [1.5512])
    (True, True, False)
    """
    places = len(token.split(".")[1])
    return any(abs(round(v, places) - float(token)) < 10 ** -(places + 3) for v in values)


def untraced(readme: str, values: list[float]) -> list[str]:
    """``line: number`` for each decimal of ``readme``'s prose that is in no results file."""
    return [f"README.md:{number}: {token}" for number, line in readme_prose(readme) for token in DECIMAL.findall(line)
            if token not in NOT_MEASUREMENTS and not is_rounding_of_one(token, values)]


def test_every_number_the_readme_quotes_is_in_a_results_file():
    missing = untraced((ROOT / "README.md").read_text(), results_values())
    assert not missing, ("numbers in no results file under benchmarks/ (quote what a script wrote, or run the "
                         "script again):\n" + "\n".join(missing))


def test_code_comments_and_checked_sections_are_left_out_and_the_rest_is_checked():
    readme = "\n".join(["B0 ran at **2.12x** and 54.9 ms/img (`--smooth 0.6`) <!-- 7.5 -->", "```bash", "x 3.3", "```",
                        "## Presets and parameter counts", "| 3.72M |", "## Bench", "B2: 197.1 against 2.4"])
    assert untraced(readme, [2.1234, 2.4]) == ["README.md:1: 54.9", "README.md:8: 197.1"]
