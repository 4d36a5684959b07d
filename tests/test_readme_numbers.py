"""The README quotes measurements that a benchmark script wrote, never numbers typed or kept from older runs.

Every decimal number in README.md's prose and tables (code, inline code and comments aside) must be, up to the
README's rounding, a number in a results file under benchmarks/ (the ``*.md`` files the scripts write and the raw
``*.jsonl`` rows; NOTES.md is a hand-kept log, so it does not count): in a file that its paragraph links, when the
paragraph links one. A run that replaces a results file then fails this test until the README quotes the new
numbers.
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
LINK = re.compile(r"\]\((?:\./)?benchmarks/([\w.\-]+)\)")


def readme_blocks(text: str) -> list[tuple[list[tuple[int, str]], set[str]]]:
    """The README's prose blocks (lines between blank lines, outside code blocks and the CHECKED_ELSEWHERE sections),
    each as its (line number, text) pairs, with inline code and comments blanked, and the benchmarks/ files it links.
    A table that links nothing takes the links of the block before it (the paragraph that introduces it)."""
    blocks, lines, links, in_code, skipped = [], [], set(), False, False

    def close():
        nonlocal lines, links
        if lines:
            table = all(line.lstrip().startswith("|") for _, line in lines)
            blocks.append((lines, links or (blocks[-1][1] if table and blocks else set())))
        lines, links = [], set()

    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            close()
            in_code = not in_code
            continue
        if line.startswith("## "):
            close()
            skipped = line[3:].strip() in CHECKED_ELSEWHERE
        if in_code or skipped:
            continue
        if not line.strip():
            close()
            continue
        links |= set(LINK.findall(line)) - {"NOTES.md"}
        line = re.sub(r"<!--.*?-->|`[^`]*`", " ", line)
        lines.append((number, re.sub(r"(?<=\d),(?=\d{3})", "", line)))
    close()
    return blocks


def results_values() -> dict[str, list[float]]:
    """Every decimal of each results file under benchmarks/, by file name."""
    files = [p for p in (ROOT / "benchmarks").iterdir() if p.suffix in (".md", ".jsonl") and p.name != "NOTES.md"]
    return {p.name: [float(v) for v in re.findall(r"\d+\.\d+", re.sub(r"(?<=\d),(?=\d{3})", "", p.read_text()))]
            for p in files}


def is_rounding_of_one(token: str, values: list[float]) -> bool:
    """Whether ``token`` (e.g. "1.55") is one of ``values`` rounded to its decimals.

    >>> is_rounding_of_one("1.55", [1.5512, 3.0]), is_rounding_of_one("1.6", [1.5512]), is_rounding_of_one("1.5", [1.5512])
    (True, True, False)
    """
    places = len(token.split(".")[1])
    return any(abs(round(v, places) - float(token)) < 10 ** -(places + 3) for v in values)


def untraced(readme: str, values: dict[str, list[float]]) -> list[str]:
    """``line: number`` for each decimal of ``readme``'s prose that is in no results file: in none of the files its
    block links, or, for a block that links none, in no results file at all."""
    missing = []
    for lines, links in readme_blocks(readme):
        pool = [v for name in (links & values.keys() or values.keys()) for v in values[name]]
        missing += [f"README.md:{number}: {token}" for number, line in lines for token in DECIMAL.findall(line)
                    if token not in NOT_MEASUREMENTS and not is_rounding_of_one(token, pool)]
    return missing


def test_every_number_the_readme_quotes_is_in_a_results_file():
    missing = untraced((ROOT / "README.md").read_text(), results_values())
    assert not missing, ("numbers in no results file under benchmarks/ that their paragraph links (quote what a "
                         "script wrote, or run the script again):\n" + "\n".join(missing))


def test_code_comments_and_checked_sections_are_left_out_and_the_rest_is_checked():
    readme = "\n".join(["B0 ran at **2.12x** and 54.9 ms/img (`--smooth 0.6`) <!-- 7.5 -->", "```bash", "x 3.3", "```",
                        "## Presets and parameter counts", "| 3.72M |", "## Bench", "B2: 197.1 against 2.4"])
    assert untraced(readme, {"RESULTS.md": [2.1234, 2.4]}) == ["README.md:1: 54.9", "README.md:8: 197.1"]


def test_a_paragraph_that_links_a_results_file_is_held_to_that_file():
    readme = "\n".join(["Rounds ([R](benchmarks/RESULTS_precision.md)): int8 1.55x, bf16 1.43x.", "",
                        "| model | int8 |", "|---|---:|", "| B0 | 1.55x |", "", "Elsewhere 1.43x."])
    values = {"RESULTS_precision.md": [1.62, 1.43], "RESULTS.md": [1.55]}
    assert untraced(readme, values) == ["README.md:1: 1.55", "README.md:5: 1.55"]
