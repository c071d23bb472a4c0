"""Reports from run folders: tables, figures, findings and one self-contained HTML page.

    runs.py      read and validate run folders and suites (docs/RUN_FORMAT.md)
    tables.py    one row per (model, recipe): mean ± std over seeds; results.md/csv/json
    analysis.py  pure numpy: top-k error, confusion, per-class accuracy, calibration
    plots.py     the PNG figures (matplotlib, Agg)
    summary.py   findings computed from the numbers
    html.py      report.html with every figure embedded
    build.py     build_report(paths, out): all of the above, used by `c100 report`
"""
