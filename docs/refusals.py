"""Rebuild docs/refusals.md: every bad input of tests/test_refusals.py, run now, with the one line it gets back.

    python docs/refusals.py            # writes docs/refusals.md (needs the dev install: pytest is imported)
    python docs/refusals.py --check    # exit 1 if docs/refusals.md differs from what the code prints now

The table of cases lives in the test module (one place); this script only runs it and writes what comes back.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_refusals as cases  # noqa: E402
from palm_bayes_cli.main import main  # noqa: E402

DOC = ROOT / "docs" / "refusals.md"


def _run(case, make, command) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        argv, _ = cases._argv(tmp, make, command)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as e:
                code = int(e.code)
        shown = [a.replace(str(tmp / "src"), "DIR").replace(str(tmp / "out"), "OUT").replace(str(ROOT) + "/", "")
                 for a in argv if a not in cases.FAST]
        line = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
        line = line.replace(str(tmp / "src"), "DIR").replace(str(tmp / "out"), "OUT").replace(str(ROOT) + "/", "")
        return code, "palm-bayes " + " ".join(shown), line


def render() -> str:
    lines = ["# Bad input palm-bayes refuses", "",
             "Each row: what was wrong, the command, and the one line palm-bayes printed (exit status 2, no "
             "traceback, nothing written). Rebuilt by `python docs/refusals.py` from the cases of "
             "`tests/test_refusals.py`, which checks each of them on every CI run. `DIR` is the folder holding "
             "the input, `OUT` the output folder.", "",
             "| bad input | command | exit | message |", "|---|---|---|---|"]
    for case, make, command, _ in cases.REFUSALS:
        code, cmd, line = _run(case, make, command)
        lines.append(f"| {case} | `{cmd}` | {code} | {line.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def main_() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with docs/refusals.md instead of writing it")
    text = render()
    if ap.parse_args().check:
        same = DOC.exists() and DOC.read_text() == text
        print("docs/refusals.md is up to date" if same else "docs/refusals.md differs from the code's messages")
        return 0 if same else 1
    DOC.write_text(text)
    print(f"wrote {DOC} ({len(cases.REFUSALS)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
