"""find_inputs with ``**`` globs: symlink loops end instead of hanging; loop-free trees match glob.glob."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from segcli.inference.inputs import _glob_loop_safe, find_inputs

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs POSIX symlinks")

LOOPS = """
import sys
from pathlib import Path
from segcli.inference.inputs import find_inputs
tmp = Path(sys.argv[1])
print([(str(i.path), i.rel) for i in find_inputs([str(tmp / "pin" / "**" / "*.png")])])
"""


@needs_symlinks
def test_recursive_glob_survives_two_symlink_loops(tmp_path):
    sub = tmp_path / "pin" / "sub"
    sub.mkdir(parents=True)
    (sub / "a.png").write_bytes(b"png")
    (sub / "self").symlink_to(".")
    (sub / "self2").symlink_to(".")
    # in a subprocess: before the fix this ran forever at 100% CPU
    done = subprocess.run([sys.executable, "-c", LOOPS, str(tmp_path)], capture_output=True, text=True, timeout=60,
                          cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr([(str(sub / "a.png"), "sub/a.png")])


@needs_symlinks
def test_recursive_glob_matches_glob_on_loop_free_trees(tmp_path, monkeypatch):
    t = tmp_path / "t"
    for d in ("a/b/c", ".h/x", "d"):
        (t / d).mkdir(parents=True)
    for f in ("1.jpg", "a/2.jpg", "a/b/3.png", "a/b/c/4.jpg", ".h/x/5.jpg", ".h/6.jpg", "a/.7.jpg", "d/8.jpg"):
        (t / f).write_bytes(b"x")
    (t / "d" / "lb").symlink_to("../a/b")  # a symlinked folder that is no loop: followed, as glob does
    (t / "broken.jpg").symlink_to("nowhere")
    monkeypatch.chdir(tmp_path)
    for pattern in ("t/**/*.jpg", "t/**", "t/**/", "**/*.png", "t/**/.h/*.jpg", "t/*/**/*.jpg", "./t/**/*.jpg",
                    "t/**/**/*.png", "**", "t/**/.*.jpg", "t/**/b", str(t / "**" / "*.png")):
        assert sorted(m for m in _glob_loop_safe(pattern) if m) == sorted(glob.glob(pattern, recursive=True)), pattern
    rels = [i.rel for i in find_inputs(["t/**/*.jpg"])]
    assert rels == ["1.jpg", "a/2.jpg", "a/b/c/4.jpg", "d/8.jpg"]  # d/lb/c/4.jpg is the same file: kept once
