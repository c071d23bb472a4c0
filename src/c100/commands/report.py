"""c100 report: tables, figures and findings from run folders and suites, in one folder.

Writes results.md/csv/json, summary.txt/md, the PNG figures, analysis/<model>-<recipe>/ (confusion,
per-class accuracy, calibration of each group's best run) and a self-contained report.html, then
prints the Markdown table. A missing, malformed or unfinished run is an error (exit 11) unless
--allow-incomplete, which reports the rest and lists the problems in the summary.
"""
import argparse
import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("report", help="tables and plots from run folders", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SUITE", help="run folders and/or folders of run folders")
    p.add_argument("--out", help="report folder (default: FIRST/report when FIRST is a folder, else reports/)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="report the usable runs even when some are missing, malformed or unfinished")
    p.add_argument("--data-root", help="where CIFAR-100's meta file is, for class names (default: as c100 data)")
    return p


def default_out(paths):
    first = Path(paths[0])
    return first / "report" if first.is_dir() else Path("reports")


def run(args):
    from c100.report.build import build_report
    from c100.report.study import is_study

    studies = [p for p in args.paths if is_study(p)]
    if studies:  # a c100 tune study folder: its own view (c100.report.study)
        return report_study(args, studies)
    out = Path(args.out) if args.out else default_out(args.paths)
    md, problems = build_report(args.paths, out, args.allow_incomplete, args.data_root)
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    print(md, end="")
    print(f"\nreport written to {out / 'report.html'}" + (f" ({len(problems)} problem(s) listed in "
                                                        f"{out / 'summary.txt'})" if problems else ""))
    return 0


def report_study(args, studies):
    from c100.errors import ReportError
    from c100.report.study import build_study_report

    if len(args.paths) > 1:
        raise ReportError(f"{studies[0]} is a tuning study: report it alone (`c100 report {studies[0]}`)")
    md, out = build_study_report(studies[0], args.out)
    print(md, end="")
    print(f"\nreport written to {out / 'report.html'}")
    return 0
