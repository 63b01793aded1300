"""`hiddenlab` command line: each sub-package registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import sys

# (sub-command module, registered names); each module has `register(subparsers)` which adds its
# parsers with `set_defaults(func=...)`; func(args) returns an exit code.
_COMMANDS = [
    "hiddenlab.study.cli",      # train, study
    "hiddenlab.models.cli",     # models
    "hiddenlab.data.cli",       # data
    "hiddenlab.analysis.cli",   # analysis
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hiddenlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a sub-package not yet built must not break the rest
            if e.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from hiddenlab.study.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"hiddenlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
