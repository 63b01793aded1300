"""`hiddenlab models`: every model name with its connection count; `hiddenlab methods`: every
selection method with its paper, options and recipe defaults."""

from __future__ import annotations

import dataclasses
import json

from hiddenlab.config import METHODS, MODELS, TrialConfig

from .build import count_params

# Recipe fields `hiddenlab methods` shows (the rest are in `hiddenlab train --method X --help`).
_RECIPE_SHOWN = ("optimizer", "lr", "momentum", "weight_decay", "schedule", "epochs",
                 "batch_size", "init")


def register(subparsers, argv: list[str] | None = None) -> None:
    p = subparsers.add_parser("models", help="list model names and their connection counts")
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, params}")
    p.set_defaults(func=_models)
    m = subparsers.add_parser("methods", help="selection methods: papers, options, recipes")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(func=_methods)


def _models(args) -> int:
    rows = [{"name": name, "params": count_params(name)} for name in MODELS]
    if args.json:
        print(json.dumps(rows))
        return 0
    for spec, row in zip(MODELS.values(), rows):
        depth = f" depth={spec.depth}" if spec.depth else ""
        print(f"{row['name']:<16} {row['params']:>12,}  {spec.paper}{depth}  "
              f"input={'x'.join(map(str, spec.input_shape))}")
    return 0


def method_rows() -> list[dict]:
    rows = []
    for name, method in METHODS.items():
        options = {f.name: f.default for f in dataclasses.fields(method.Options)}
        recipe = TrialConfig(method=name).to_dict()
        rows.append({"method": name, "paper": method.paper, "what": method.summary,
                     "options": options,
                     "recipe": {k: recipe[k] for k in _RECIPE_SHOWN},
                     "recipe_note": method.recipe_note()})
    return rows


def _methods(args) -> int:
    rows = method_rows()
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    for r in rows:
        print(f"{r['method']}: {r['what']}")
        print(f"  paper:   {r['paper']}")
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "none"
        print(f"  options: {opts}")
        print("  recipe:  " + ", ".join(f"{k}={v}" for k, v in r["recipe"].items()))
        if r["recipe_note"]:
            print(f"           ({r['recipe_note']})")
    print("\n`hiddenlab train --method X --help` shows every flag with X's defaults.")
    return 0
