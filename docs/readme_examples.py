"""Rerun the README's examples and show where its printed output no longer matches the code.

    python docs/readme_examples.py              # every `palm-bayes ...` example on the shipped data
    python docs/readme_examples.py --only decide backtest

Each ```bash block of README.md is scanned for `palm-bayes` command lines whose input exists in the repository
(lines that name files the user would bring, such as `runs.csv`, are skipped). The commands run in order, all in
one scratch folder that sees the repository's `examples/` (so `out/` of one command feeds the next, as for a
reader going down the page), and each is timed. Every command's terminal output (both streams, in order) is
printed, except where the README shows what a block's last command prints in the next fenced block: there only the
lines that differ are printed, as a diff. Nothing in the
repository is written.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\s*$")


def blocks(text: str) -> list[tuple[str, list[str]]]:
    """The README's fenced blocks in order: (language, lines)."""
    out, lang, cur = [], None, []
    for line in text.splitlines():
        m = FENCE.match(line)
        if m and lang is None:
            lang, cur = m.group(1), []
        elif line.strip() == "```" and lang is not None:
            out.append((lang, cur))
            lang = None
        elif lang is not None:
            cur.append(line)
    return out


def examples(text: str) -> list[tuple[list[str], list[str] | None]]:
    """(commands of a bash block that run on shipped data, the printed output shown right after it or None)."""
    found = []
    bs = blocks(text)
    for i, (lang, lines) in enumerate(bs):
        if lang != "bash":
            continue
        cmds = []
        for line in lines:
            cmd = line.split("#", 1)[0].strip()
            if not cmd.startswith("palm-bayes "):
                continue
            words = shlex.split(cmd)
            inputs = [w for w in words[1:] if "/" in w and not w.endswith("/") and not w.startswith("-")]
            if all((ROOT / w).exists() for w in inputs if not w.startswith(("out", "bt", "fit", "report"))) \
                    and not any(w in ("runs.csv", "many_curves.csv") for w in words):
                cmds.append(cmd)
        if cmds:
            shown = bs[i + 1][1] if i + 1 < len(bs) and bs[i + 1][0] == "" else None
            found.append((cmds, shown))
    return found


def run(cmds: list[str], shown: list[str] | None, where: Path) -> None:
    """Run one block's commands in ``where``; print their timings and what they printed (or its diff from the
    README's block)."""
    exe = Path(sys.executable).with_name("palm-bayes")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # both streams in the order a terminal shows them
    printed = []
    for cmd in cmds:
        t0 = time.perf_counter()
        done = subprocess.run([str(exe), *shlex.split(cmd)[1:]], cwd=where, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
        wall = time.perf_counter() - t0
        print(f"$ {cmd}\n  exit {done.returncode}, {wall:.1f} s wall")
        printed = done.stdout.splitlines()  # the README shows what the block's last command prints
        if cmd != cmds[-1] or shown is None:
            print("\n".join(f"  {line}" for line in printed))
    if shown is not None:
        diff = list(difflib.unified_diff(shown, printed, "README", "now", lineterm="", n=0))
        print("  output as in the README" if not diff else "\n".join(f"  {line}" for line in diff))
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="COMMAND", help="only examples using these sub-commands")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:  # one folder, as a reader following the README top to bottom
        (Path(d) / "examples").symlink_to(ROOT / "examples")
        for cmds, shown in examples((ROOT / "README.md").read_text()):
            if a.only and not any(shlex.split(c)[1] in a.only for c in cmds):
                continue
            run(cmds, shown, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
