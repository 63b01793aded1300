"""`hiddenlab` command line: each sub-package registers its own sub-commands."""

from __future__ import annotations

import argparse
import sys

from hiddenlab.analysis import cli as analysis_cli
from hiddenlab.config import ConfigError
from hiddenlab.data import cli as data_cli
from hiddenlab.models import cli as models_cli
from hiddenlab.study import cli as study_cli
from hiddenlab.study import netexport_cli

# Each module has `register(subparsers, argv)`, which adds its parsers with
# `set_defaults(func=...)`; func(args) returns an exit code.
_COMMANDS = [study_cli, netexport_cli, models_cli, data_cli, analysis_cli]


class Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other refusal (the full usage of `train` is a
    screenful that buries the error); sub-commands inherit this class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = Parser(prog="hiddenlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMANDS:
        module.register(sub, list(sys.argv[1:] if argv is None else argv))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"hiddenlab: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:   # not about a file the user named: a bug, show it whole
            raise
        print(f"hiddenlab: error: {e.filename}: {e.strerror or type(e).__name__}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
