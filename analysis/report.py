"""Write figures, tables and the measured-vs-published report.

Per built id: `<id>.png` and `<id>.pdf` (figures), `<id>.csv` (exactly the plotted numbers),
`<id>.md` (tables), `<id>-<name>.csv/.md` (extra frames such as scaling exponents); a generic
study id `study:<name>` is written as `study-<name>.*` (no colon in file names). Then
`report.md` and a self-contained `report.html` (images inline as base64) built from the same list
of blocks, so the two never disagree.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path

import numpy as np
import pandas as pd

from .core import FigureResult
from .published import claims, compare
from .registry import Skipped, build_all, default_ids, spec_of
from .results import load_results, load_selections, trial_table


# --- tables as text ---------------------------------------------------------------------------

def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub pipe table (no `tabulate` dependency)."""
    cols = [str(c) for c in frame.columns]
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(esc(_cell(v)) for v in row) + " |")
    return "\n".join(lines)


def html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- files per id -------------------------------------------------------------------------------

def file_stem(fig_id: str) -> str:
    """The file name of an id: `study:<name>` -> `study-<name>`."""
    return fig_id.replace(":", "-")


def write_result(result: FigureResult, out: Path, pdf: bool = True) -> list[Path]:
    """Write one built id; close its figure (long runs would otherwise hold every canvas)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = file_stem(result.id)
    written = []
    csv = out / f"{stem}.csv"
    result.data.to_csv(csv, index=False, float_format="%.6g")
    written.append(csv)
    if result.table is not None:
        md = out / f"{stem}.md"
        text = f"# {result.title}\n\n{markdown_table(result.table)}\n"
        for title, frame in result.tables.items():
            text += f"\n## {title}\n\n{markdown_table(frame)}\n"
        md.write_text(text)
        written.append(md)
    for name, frame in result.extra.items():
        p = out / f"{stem}-{name}.csv"
        frame.to_csv(p, index=False, float_format="%.6g")
        written.append(p)
        if result.table is None or name != "exponents":
            (out / f"{stem}-{name}.md").write_text(markdown_table(frame) + "\n")
    if result.fig is not None:
        png = out / f"{stem}.png"
        result.fig.savefig(png, dpi=150)
        written.append(png)
        if pdf:
            result.fig.savefig(out / f"{stem}.pdf")
            written.append(out / f"{stem}.pdf")
    return written


HARDWARE_COLUMNS = ("gpu_name", "gpu", "device_name", "accelerator", "cpu")


# --- cost --------------------------------------------------------------------------------------

def cost_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(per host, per study, one-line total) of trial wall time; every trial counts, finished or
    not, because failed trials cost machine time too."""
    t = trial_table(df)
    if t.empty:
        return pd.DataFrame(), pd.DataFrame(), "no trials"
    t["hostname"] = t.get("hostname", pd.Series(index=t.index, dtype=object)).fillna("unknown")
    hours = t["wall_time_s"].astype(float) / 3600
    by_host = t.assign(h=hours).groupby("hostname").agg(
        trials=("run_id", "size"), finished=("finished", "sum"), wall_hours=("h", "sum"),
        longest_trial_hours=("h", "max")).reset_index()
    # The contract names only `hostname`; should the study package add a device description,
    # show it beside the host.
    hw = [c for c in HARDWARE_COLUMNS if c in df.columns]
    if hw and "hostname" in df.columns:
        desc = df.dropna(subset=["hostname"]).groupby("hostname")[hw].agg(
            lambda v: ", ".join(sorted({str(x) for x in v.dropna()})))
        by_host = by_host.join(desc, on="hostname")
    by_study = t.assign(h=hours).groupby("study").agg(
        trials=("run_id", "size"), finished=("finished", "sum"), wall_hours=("h", "sum")).reset_index()
    for f in (by_host, by_study):
        for c in f.columns:
            if c.endswith("hours"):
                f[c] = f[c].round(3)
    total = (f"{len(t)} trials ({int(t['finished'].sum())} finished) on "
             f"{t['hostname'].nunique()} host(s): {hours.sum():.2f} trial-hours of wall time")
    return by_host, by_study, total


# --- the report ----------------------------------------------------------------------------------

def _published_display(cmp: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in cmp.iterrows():
        measured = "not measured" if r["n"] == 0 else (
            f"{r['measured']:.2f}" + (f" ± {r['sd']:.2f}" if np.isfinite(r["sd"]) else ""))
        diff = "–" if not np.isfinite(r["difference"]) else f"{r['difference']:+.2f}"
        rows.append({"paper": r["paper"], "quantity": r["quantity"], "setting": r["setting"],
                     "published": f"{r['published']:g}", "measured (mean ± sd)": measured,
                     "difference": diff, "seeds": int(r["n"]), "study": r["studies"] or "–",
                     "measured number": r["compared"], "note": r["note"]})
    return pd.DataFrame(rows)


def report_blocks(results: dict, df: pd.DataFrame, storage: str, out: Path,
                  scale: str | None = None) -> list[tuple]:
    built = {k: v for k, v in results.items() if not isinstance(v, Skipped)}
    skipped = [v for v in results.values() if isinstance(v, Skipped)]
    studies = sorted(set(df["study"])) if "study" in df.columns and len(df) else []
    b: list[tuple] = [("h", 1, "hiddenlab: reproduced figures and measured vs published"),
                      ("p", f"Results: `{storage}`; studies: {', '.join(studies) or 'none'}; "
                            f"generated {_dt.datetime.now().isoformat(timespec='seconds')}."),
                      ("p", f"{len(built)} figures/tables built, {len(skipped)} skipped. Accuracies "
                            "in percent; bands and ± are one standard deviation over seeds.")]
    cmp = compare(df, scale)
    b += [("h", 2, "Published vs measured"),
          ("p", "Every number of the papers' published tables and abstracts beside the reproduced "
                "one (matched by method, model, init, k, K, data set); difference = measured − "
                "published (percentage points; millions for parameter counts). The measured "
                "number is the one the paper reports: the test accuracy of the last epoch's "
                "network (edge-popup, Zhou, dense references) or of the best validation epoch's "
                "(Slot Machines selects on validation: early stopping)."),
          ("table", _published_display(cmp))]
    cl = claims(built)
    b += [("h", 2, "The papers' qualitative claims"), ("table", cl)]
    host, study, total = cost_tables(df)
    b += [("h", 2, "What the results cost"), ("p", total)]
    if not host.empty:
        b += [("h", 3, "Per host"), ("table", host), ("h", 3, "Per study"), ("table", study)]
    b.append(("h", 2, "Figures and tables"))
    for fid, r in built.items():
        stem = file_stem(fid)
        b.append(("h", 3, f"{fid}: {r.title or spec_of(fid).title}"))
        b.append(("p", f"**Reading:** {r.reading}" if r.reading else "**Reading:** –"))
        for note in r.notes:
            b.append(("li", note))
        if r.fig is not None:
            b.append(("img", out / f"{stem}.png", fid))
        if r.table is not None:
            b.append(("table", r.table))
        for title, frame in r.tables.items():
            b += [("p", f"**{title}**"), ("table", frame)]
        links = [f"[{stem}.csv]({stem}.csv)"]
        links += [f"[{stem}.pdf]({stem}.pdf)"] if (out / f"{stem}.pdf").exists() else []
        links += [f"[{stem}-{n}.csv]({stem}-{n}.csv)" for n in r.extra]
        b.append(("p", "Data: " + ", ".join(links)))
    if skipped:
        b.append(("h", 2, "Skipped"))
        for s in skipped:
            b.append(("li", f"**{s.id}**: {s.reason}"))
    return b


def render_markdown(blocks) -> str:
    out = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2] + "\n")
        elif kind == "p":
            out.append(blk[1] + "\n")
        elif kind == "li":
            out.append(f"- {blk[1]}")
        elif kind == "table":
            out.append(markdown_table(blk[1]) + "\n")
        elif kind == "img":
            out.append(f"![{blk[2]}]({Path(blk[1]).name})\n")
    text, prev = "", None
    for line, blk in zip(out, blocks):
        if prev == "li" and blk[0] != "li":
            text += "\n"
        text += line + "\n"
        prev = blk[0]
    return text


_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}th{background:#f2f2f2}
img{max-width:100%;border:1px solid #eee}code{background:#f4f4f4;padding:0 .2em}
h3{margin-top:2em}"""


def _inline_md(text: str) -> str:
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', t)


def render_html(blocks) -> str:
    parts, in_list = [], False
    for blk in blocks:
        kind = blk[0]
        if kind != "li" and in_list:
            parts.append("</ul>")
            in_list = False
        if kind == "h":
            parts.append(f"<h{blk[1]}>{_inline_md(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            parts.append(f"<p>{_inline_md(blk[1])}</p>")
        elif kind == "li":
            if not in_list:
                parts.append("<ul>")
                in_list = True
            parts.append(f"<li>{_inline_md(blk[1])}</li>")
        elif kind == "table":
            parts.append(html_table(blk[1]))
        elif kind == "img":
            data = base64.b64encode(Path(blk[1]).read_bytes()).decode()
            parts.append(f'<img alt="{html.escape(blk[2])}" src="data:image/png;base64,{data}">')
    if in_list:
        parts.append("</ul>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>hiddenlab report</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(parts) + "</body></html>")


def write_report(results: dict, df: pd.DataFrame, out: Path, storage: str = "",
                 scale: str | None = None) -> tuple[Path, Path]:
    blocks = report_blocks(results, df, storage, out, scale)
    md, page = out / "report.md", out / "report.html"
    md.write_text(render_markdown(blocks))
    page.write_text(render_html(blocks))
    return md, page


def make_all(storage, out, studies=None, ids=None, pdf: bool = True, scale: str | None = None,
             log=print) -> dict:
    """The whole pipeline behind `hiddenlab analysis figures`: load, build every id, write files
    and the report. Returns {id: FigureResult | Skipped}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = load_results(storage, studies)
    need_sel = any(spec_of(i).needs_selections for i in (ids or default_ids(df, studies)))
    selections = load_selections(storage, df) if need_sel and len(df) else {}
    results = build_all(df, selections, ids=ids, selected=studies, scale=scale)
    for fid, r in results.items():
        if isinstance(r, Skipped):
            log(f"skipped {fid}: {r.reason}")
            continue
        files = write_result(r, out, pdf=pdf)
        log(f"wrote   {fid}: {', '.join(p.name for p in files)}")
    md, page = write_report(results, df, out, str(storage), scale)
    for r in results.values():
        if isinstance(r, FigureResult) and r.fig is not None:
            r.fig.clf()  # figures are not pyplot-managed; dropping the artists frees them
    log(f"wrote   {md} and {page.name}")
    return results
