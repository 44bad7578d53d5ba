"""Entry point of the ``palm-bayes`` command: sub-command dispatch and user-facing error handling."""

from __future__ import annotations

import argparse
import logging
import sys

from palm_bayes import __version__
from palm_bayes.errors import InputError, OutputError

from . import backtest, decide, fit, forecast, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="palm-bayes",
        description="Forecast active-learning accuracy curves with the PALM model (point fits and Bayesian).",
    )
    parser.add_argument("--version", action="version", version=f"palm-bayes {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    forecast.add_parser(sub)
    decide.add_parser(sub)
    report.add_parser(sub)
    fit.add_parser(sub)
    backtest.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with a one-line message)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    status = logging.getLogger("palm_bayes")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("palm-bayes: %(message)s"))
    if not getattr(args, "quiet", False):  # status lines of the library ("compiling the model ...")
        status.addHandler(handler)
        status.setLevel(logging.INFO)
    try:
        return int(args.run(args) or 0)
    except (InputError, OutputError) as e:
        print(f"palm-bayes {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("palm-bayes: interrupted", file=sys.stderr)
        return 130
    finally:
        status.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
