"""One self-contained report.html: the table, the findings and every PNG as a base64 data URI."""
import base64
import html
from pathlib import Path

STYLE = """body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
td:first-child,td:nth-child(2){text-align:left}th{background:#f0f0f0}img{max-width:100%;display:block}
figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}.problems{color:#a00}"""


def md_table_to_html(md):
    """The pipe table at the top of ``md`` as an HTML table; text after it becomes a note."""
    lines = [ln for ln in md.splitlines() if ln.strip()]
    rows = [ln.strip().strip("|").split(" | ") for ln in lines if ln.startswith("|") and not ln.startswith("|---")]
    notes = [ln for ln in lines if not ln.startswith("|")]
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in rows[0]) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in rows[1:]]
    out.append("</table>")
    out += [f"<p><small>{html.escape(n)}</small></p>" for n in notes]
    return "\n".join(out)


def data_uri(png_path):
    return "data:image/png;base64," + base64.b64encode(Path(png_path).read_bytes()).decode("ascii")


def figure(fig_id, caption, png_path):
    cap = html.escape(caption)
    return (f'<figure><img id="{html.escape(fig_id)}" alt="{cap}" src="{data_uri(png_path)}">'
            f"<figcaption>{cap}</figcaption></figure>")


def write_html(path, title, table_md, findings, problems, sections):
    """``sections`` is a list of (heading, [(img id, caption, png path), ...])."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             "<h2>Results</h2>", md_table_to_html(table_md), "<h2>Findings</h2><ul>"]
    parts += [f"<li>{html.escape(f)}</li>" for f in findings]
    parts.append("</ul>")
    if problems:
        parts.append("<h2 class='problems'>Problems (left out or incomplete)</h2><ul class='problems'>")
        parts += [f"<li>{html.escape(p.in_report())}</li>" for p in problems]
        parts.append("</ul>")
    for heading, figs in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts += [figure(*f) for f in figs]
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts), encoding="utf-8")
    return path
