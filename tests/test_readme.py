"""The README cannot lie: its shell blocks are run, and its test command is the one CI runs.

Every fenced ``bash`` (or ``sh``/``shell``/``console``) block in README.md carries a marker
line directly above its opening fence:

- ``<!-- tested -->``: run by ``test_marked_blocks_succeed_in_a_fresh_copy`` in a temporary copy
  of the repository (no ``.git``, no ``.venv``), in README order, each with ``bash -e``; every
  one must exit 0. A ``python`` block with this marker is run with the venv's Python.
- ``<!-- ci-command -->``: the test command. It is not run here (it would run this test
  again); instead it must appear verbatim in ``.ci/run``, which runs it on a clean clone.
- ``<!-- not tested: REASON -->``: shown but not runnable here (needs network or several
  machines); the reason must be given.

A block that creates ``.venv`` (``python3 -m venv .venv && .venv/bin/pip install -e . ...``) runs as
written: the copy's ``.venv`` is made beforehand with a ``.pth`` file that makes the current
venv's packages visible, so ``pip install -e .`` installs only segcli itself, offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
SHELLS = ("bash", "sh", "shell", "console")
MARKER = re.compile(r"^<!--\s*(tested|ci-command|not tested:\s*(?P<reason>.*?))\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
BLOCK_TIMEOUT_S = 1200
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", "out", "runs")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str | None  # "tested", "ci-command", "not tested" or None
    reason: str
    code: str


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block with its language and the marker on the line just above its fence.

    >>> blocks = parse_blocks("<!-- tested -->\\n```bash\\necho hi\\n```\\n\\n```python\\nx = 1\\n```\\n")
    >>> [(b.line, b.lang, b.marker, b.code) for b in blocks]
    [(2, 'bash', 'tested', 'echo hi\\n'), (6, 'python', None, 'x = 1\\n')]
    """
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        kind = None
        if marker:
            kind = "not tested" if marker["reason"] is not None else marker.group(1)
        blocks.append(Block(i + 1, opening["lang"].lower(), kind, (marker["reason"] or "") if marker else "",
                            "".join(line + "\n" for line in lines[i + 1:end])))
        i = end + 1
    return blocks


def shell_blocks() -> list[Block]:
    return [b for b in parse_blocks(README.read_text()) if b.lang in SHELLS]


def blocks_to_run() -> list[Block]:
    return [b for b in parse_blocks(README.read_text()) if b.marker == "tested" and b.lang in SHELLS + ("python",)]


def test_every_shell_block_says_how_it_is_tested():
    unmarked = [f"README.md:{b.line}" for b in shell_blocks() if b.marker is None]
    assert not unmarked, (f"shell blocks without <!-- tested -->, <!-- ci-command --> or "
                          f"<!-- not tested: REASON --> on the line above: {unmarked}")
    no_reason = [f"README.md:{b.line}" for b in shell_blocks() if b.marker == "not tested" and not b.reason.strip()]
    assert not no_reason, f"<!-- not tested: --> needs a reason: {no_reason}"
    assert blocks_to_run(), "README.md has no <!-- tested --> block"


def test_the_readme_test_command_is_what_ci_runs():
    ci = [b for b in shell_blocks() if b.marker == "ci-command"]
    assert len(ci) == 1, f"expected exactly one <!-- ci-command --> block, found {len(ci)}"
    command = ci[0].code.strip()
    assert "\n" not in command, "the test command should be one line, copied into .ci/run"
    ci_lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    assert command in ci_lines, f".ci/run does not run the README's test command verbatim: {command}"


def _venv_with_current_packages(copy: Path) -> None:
    """``copy/.venv``: a real venv with pip that also sees this venv's packages (through a .pth file)."""
    subprocess.run([sys.executable, "-m", "venv", str(copy / ".venv")], check=True, timeout=300)
    purelib = Path(sysconfig.get_paths()["purelib"])
    site = copy / ".venv" / purelib.relative_to(Path(sys.prefix))
    (site / "_segcli_readme_test_parent.pth").write_text(str(purelib) + "\n")


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    copy = tmp_path_factory.mktemp("readme") / "segcli"
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
    _venv_with_current_packages(copy)
    return copy


def _env(tmp_path) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PIP_DISABLE_PIP_VERSION_CHECK="1", SEGCLI_HOME=str(tmp_path / "home"))
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.mark.slow
def test_marked_blocks_succeed_in_a_fresh_copy(repo_copy, tmp_path):
    env = _env(tmp_path)
    blocks = blocks_to_run()
    for block in blocks:
        if block.lang == "python":
            argv = [str(repo_copy / ".venv" / "bin" / "python"), "-c", block.code]
        else:
            argv = ["bash", "-e", "-o", "pipefail", "-c", block.code]
        result = subprocess.run(argv, cwd=repo_copy, env=env, capture_output=True, text=True,
                                timeout=BLOCK_TIMEOUT_S)
        assert result.returncode == 0, (f"README.md:{block.line} exited {result.returncode}:\n{block.code}\n"
                                        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
        if block is blocks[0]:
            _check_main_job(repo_copy)


def _check_main_job(copy: Path) -> None:
    """The first README command (set up, then predict on samples/) leaves a mask and an overlay per sample image."""
    from segcli.data.image_io import is_image_name

    samples = [p for folder in ("photos", "val/images") for p in sorted((copy / "samples" / folder).iterdir())
               if is_image_name(p)]
    written = {p.name for p in (copy / "out").rglob("*")} if (copy / "out").is_dir() else set()
    missing = [str(p.relative_to(copy)) for p in samples
               if f"{p.stem}.png" not in written or f"{p.stem}_overlay.jpg" not in written]
    assert samples and not missing, f"the README's first command left no mask or overlay in out/ for {missing}"
