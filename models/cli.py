"""`hiddenlab models`: every model name with its connection count."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list model names and their connection counts")
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, params}")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from . import MODELS, count_params

    rows = [{"name": name, "params": count_params(name)} for name in MODELS]
    if args.json:
        print(json.dumps(rows))
        return 0
    for spec, row in zip(MODELS.values(), rows):
        depth = f" depth={spec.depth}" if spec.depth else ""
        print(f"{row['name']:<16} {row['params']:>12,}  {spec.paper}{depth}  "
              f"input={'x'.join(map(str, spec.input_shape))}")
    return 0
