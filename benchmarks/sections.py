"""Results files with one section per kind of CPU, so a run replaces only its own kind's section.

A section is the text between ``<!-- OWNER KIND: begin -->`` and ``<!-- OWNER KIND: end -->``, where OWNER is the
script that writes it and KIND is ``cpu_kind()``.
"""

from __future__ import annotations

from pathlib import Path


def cpu_kind() -> str:
    """amx, avx512 or avx2: the kinds of CPU whose results differ enough to keep apart."""
    from segcli.hardware import cpu_info, has_amx

    return "amx" if has_amx() else "avx512" if "avx512f" in cpu_info()["isa"] else "avx2"


def cpu_line() -> str:
    """The CPU model, its logical CPUs and the ISA flags that matter here: every result names its machine."""
    from segcli.hardware import cpu_info

    info = cpu_info()
    return f"{info['cpu']}, {info['logical_cores']} logical CPUs, flags: {' '.join(info['isa'])}"


def write_section(path: Path, report: str, kind: str, owner: str) -> None:
    """Replace ``owner``'s section of ``path`` for this ``kind`` of CPU, keeping the other sections."""
    begin, end = f"<!-- {owner} {kind}: begin -->", f"<!-- {owner} {kind}: end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{report.rstrip()}\n{end}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        rest = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block if text.strip() else block
    path.write_text(text)
