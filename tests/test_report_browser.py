"""report.html in headless Chromium: every embedded figure decodes (naturalWidth > 0).

Needs the Debian package `chromium` (`.ci/install-chromium` installs it); skipped when absent.
A copy of the page gets a small script that, on load, writes the state of every <img> into the
DOM, which `chromium --dump-dom` then prints.
"""
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from c100.cli import main

try:
    from test_report import make_run
except ImportError:  # tests/ as a package
    from tests.test_report import make_run

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (run .ci/install-chromium)")

CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = document.createElement("pre");
  out.id = "img-check";
  out.textContent = JSON.stringify(imgs.map(function (i) {
    return {id: i.id, alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight};
  }));
  document.body.appendChild(out);
});
</script>"""


def render(page: Path, profile: Path) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
           "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_every_figure_loads_in_chromium(tmp_path):
    for seed, err in ((0, 30.0), (1, 31.0)):
        make_run(tmp_path / "suite", "resnet18", "fast", seed, err, 9.0)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "suite"), "--out", str(out)]) == 0
    n_png = len(list(out.rglob("*.png")))

    page = tmp_path / "checked.html"
    html_text = (out / "report.html").read_text(encoding="utf-8")
    page.write_text(html_text.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    dom = render(page, tmp_path / "profile")

    found = re.search(r'<pre id="img-check">(.*?)</pre>', dom, re.S)
    assert found, "the check script did not run: " + dom[-500:]
    imgs = json.loads(html.unescape(found.group(1)))
    assert len(imgs) == n_png == 7  # 3 cost plots, 1 curve, confusion + per-class + reliability
    for img in imgs:
        assert img["id"] and img["alt"]
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, f"figure {img['id']} did not load"
    assert len({i["id"] for i in imgs}) == len(imgs)
