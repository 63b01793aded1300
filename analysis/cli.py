"""`hiddenlab analysis figures`: build every paper figure and table whose trials exist, the
scaling laws, a generic figure for every other study (a user's own), and the measured-vs-published
report from a study storage folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from hiddenlab.config import ConfigError
from hiddenlab.study.spaces import SCALES


def register(subparsers, argv: list[str] | None = None) -> None:
    p = subparsers.add_parser("analysis", help="figures, tables and the report from study results",
                              description=__doc__)
    sub = p.add_subparsers(dest="analysis_command", required=True, metavar="SUBCOMMAND")
    f = sub.add_parser("figures", help="write <id>.png/.pdf/.csv(/.md) per figure and table, and "
                       "report.md / report.html",
                       description="For every figure and table id whose studies have finished "
                       "trials: DIR/<id>.png and .pdf, DIR/<id>.csv with the plotted numbers "
                       "(mean, sd, n per point), tables also as Markdown; then DIR/report.md and a "
                       "self-contained DIR/report.html. Every study no paper figure claims (a "
                       "study of your own) gets the generic figure study:<name> (files "
                       "DIR/study-<name>.*): accuracy against each numeric field it varies, its "
                       "best trials and power-law fits. Ids whose studies are missing are listed "
                       "as skipped with the missing studies named.")
    f.add_argument("--results", required=True, metavar="STORAGE",
                   help="storage folder holding <study>/results.parquet")
    f.add_argument("--study", action="extend", nargs="+", metavar="NAME", default=None,
                   help="only these studies (default: every study found)")
    f.add_argument("--out", required=True, metavar="DIR", help="output folder")
    f.add_argument("--id", action="extend", nargs="+", metavar="ID", default=None, dest="ids",
                   help="only these figure/table ids, or study:<name> for the generic figure of "
                   "any study (default: every id, and study:<name> for each study no figure "
                   "claims)")
    f.add_argument("--scale", default=None, metavar="SCALE",
                   help="use the trials of this study scale (smoke, paper); default: per study "
                   "the largest scale with finished trials")
    f.add_argument("--no-pdf", action="store_true", help="skip the PDF copies (faster)")
    f.set_defaults(func=run_figures)


def run_figures(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # headless: the CLI only writes files

    from .registry import FIGURES, known_id
    from .report import make_all

    ids = args.ids
    if ids:
        unknown = [i for i in ids if not known_id(i)]
        if unknown:
            raise ConfigError("id", f"unknown id {unknown[0]!r}; known: {', '.join(FIGURES)}, "
                              "or study:<name> (the generic figure of any study)")
    check_arguments(args)
    make_all(args.results, args.out, studies=args.study, ids=ids, pdf=not args.no_pdf,
             scale=args.scale)
    return 0


def check_arguments(args: argparse.Namespace) -> None:
    """Everything `make_all` would find wrong after writing into --out: the scale, the study
    names, the results folder and its tables, an --out that can be written."""
    from hiddenlab.study.preflight import check_writable

    from .results import check_results

    if args.scale is not None and args.scale not in SCALES:
        raise ConfigError("scale", f"{args.scale!r} is not one of {', '.join(SCALES)}")
    root = Path(args.results)
    if not root.is_dir():
        raise ConfigError("results", f"{root} is not a folder" if root.exists() else
                          f"{root} does not exist")
    if args.study:
        known = set(_study_names()) | {p.parent.name for p in root.glob("*/results.parquet")}
        unknown = [s for s in args.study if s not in known]
        if unknown:
            raise ConfigError("study", f"{unknown[0]!r} is neither a study nor a folder with "
                              f"results in {root}; studies: {', '.join(sorted(known))}")
    check_results(root, args.study)
    check_writable(args.out, "out")


def _study_names() -> list[str]:
    from hiddenlab.study.registry import studies

    return list(studies())
