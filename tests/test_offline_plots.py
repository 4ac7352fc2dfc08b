"""tools.offline_plots: the pages of `dvc plots show` and `dvc plots diff` render every Vega plot with the network
closed and show every image whole (scaled to the window, aspect kept), checked in a real headless Chromium
(those tests are skipped when no Chromium is installed; `.ci/run` installs Debian's when it can)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from tools import offline_plots

CHROMIUM = (os.environ.get("EDNAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or shutil.which("google-chrome"))
needs_chromium = pytest.mark.skipif(
    not CHROMIUM, reason="no Chromium on PATH (Debian: apt-get install chromium; or set EDNAS_CHROMIUM)")

WIDTH = 1000  # the browser window: both images are wider than it
VEGA_PLOTS = ["search_accuracy_and_reward", "child_loss"]  # the div ids DVC gives the plots below
DVC_YAML = """plots:
  - search accuracy and reward:
      template: linear
      x: epoch
      y:
        metrics/epochs.csv: [child_acc, reward]
  - child loss:
      x: epoch
      y:
        metrics/epochs.csv: child_loss
  - metrics/figures/policy_final.png
  - metrics/figures/wide.png
"""


def write_png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> None:
    row = b"\x00" + bytes(rgb) * width

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def write_curves(repo: Path, epochs: int, scale: float) -> None:
    lines = ["epoch,child_acc,reward,child_loss"]
    lines += [f"{e},{scale * e / epochs:.3f},{scale * e / (2 * epochs):.3f},{2.3 / e:.3f}"
              for e in range(1, epochs + 1)]
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/epochs.csv").write_text("\n".join(lines) + "\n")


def run(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DVC_ROOT"}
    env["DVC_NO_ANALYTICS"] = "1"
    done = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dvc(repo: Path, *args: str) -> str:
    return run(repo, sys.executable, "-m", "dvc", *args)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repository with two Vega plots of a CSV and two wide PNGs: one commit, then a changed
    workspace (for `dvc plots diff HEAD`); the offline template installed."""
    repo = tmp_path_factory.mktemp("plots")
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@localhost")
    run(repo, *git, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write_curves(repo, 6, 0.8)
    write_png(repo / "metrics/figures/policy_final.png", 1562, 987, (40, 90, 200))  # the demo's size
    write_png(repo / "metrics/figures/wide.png", 2400, 300, (200, 60, 60))
    run(repo, *git, "add", "-A")
    run(repo, *git, "commit", "-q", "-m", "first")
    write_curves(repo, 6, 0.9)
    write_png(repo / "metrics/figures/wide.png", 2400, 300, (60, 160, 60))
    offline_plots.install(repo)
    return repo


# --- the template and the config ----------------------------------------------------------------------------

def test_install_writes_template_and_local_config_once(repo):
    template = repo / ".dvc/offline_plots.html"
    text = template.read_text()
    assert "{plot_divs}" in text and "{refresh_tag}" in text
    assert "{scripts}" not in text  # DVC's CDN <script> tags go there
    assert "cdn.jsdelivr" not in text and "window.vegaEmbed=" in text
    assert text.startswith(offline_plots.MARKER) and "vega-lite 5." in text.split("\n", 1)[0]
    assert "html_template = offline_plots.html" in (repo / ".dvc/config.local").read_text()
    assert "html_template" not in (repo / ".dvc/config").read_text()  # machine-local, not committed
    assert "/offline_plots.html" in (repo / ".dvc/.gitignore").read_text().splitlines()
    status = run(repo, "git", "status", "--porcelain", "--untracked-files=all")
    assert "offline_plots" not in status and ".tmp" not in status  # generated files stay out of git
    before = template.stat().st_mtime_ns
    offline_plots.install(repo)  # same vl-convert: the template is kept
    assert template.stat().st_mtime_ns == before


def test_cli_says_where_and_refuses_a_folder_without_dvc(tmp_path, capsys):
    assert offline_plots.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (f"offline_plots: {tmp_path}: {tmp_path} is not a DVC repository "
                                               "(no .dvc folder)")


def test_shown_page_loads_nothing_from_the_network(repo, tmp_path):
    dvc(repo, "plots", "show", "-o", str(tmp_path / "page"))
    page = (tmp_path / "page/index.html").read_text()
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert re.findall(r"vegaEmbed\('#([^']+)'", page) == VEGA_PLOTS


# --- in a real browser, network closed ----------------------------------------------------------------------

# Collects every script error and failed load from the start of the page ...
PROBE_HEAD = """<script>
window.__probeErrors = [];
addEventListener('error',
  e => __probeErrors.push(e.message || 'failed to load ' + (e.target.src || e.target.href)), true);
addEventListener('unhandledrejection',
  e => __probeErrors.push('rejected: ' + ((e.reason && e.reason.message) || e.reason)));
</script>"""
# ... and, once the page has loaded and vega-embed has drawn, measures the plots and images into <pre id=probe>.
PROBE_TAIL = """<script>
addEventListener('load', () => setTimeout(() => {
  const inside = (a, b) => a.left >= b.left - 1 && a.right <= b.right + 1
                           && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  const out = {errors: __probeErrors, viewport: document.documentElement.clientWidth,
               scrollWidth: document.documentElement.scrollWidth, vega: {}, images: []};
  for (const id of VEGA_IDS) {
    const div = document.getElementById(id);
    out.vega[id] = {embedded: div.classList.contains('vega-embed'),
                    lines: div.querySelectorAll('svg .mark-line path').length,
                    inkedCanvas: [...div.querySelectorAll('canvas')].some(c => c.width > 0 && c.height > 0)};
  }
  for (const img of document.images) {
    const r = img.getBoundingClientRect(), clippedBy = [];
    for (let a = img.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      const st = getComputedStyle(a);
      if ((st.overflowX !== 'visible' || st.overflowY !== 'visible') && !inside(r, a.getBoundingClientRect()))
        clippedBy.push(a.id || a.tagName);
    }
    out.images.push({src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
                     natural: [img.naturalWidth, img.naturalHeight], shown: [r.width, r.height],
                     left: r.left, right: r.right, clippedBy});
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 3000));
</script>"""


def browse_offline(page: Path) -> dict:
    """Opens a copy of `page` (with the probe added) in headless Chromium with DNS and HTTP(S) closed."""
    text = page.read_text(encoding="utf8")
    ids = re.findall(r"vegaEmbed\('#([^']+)'", text)
    text = text.replace("<head>", "<head>" + PROBE_HEAD, 1)
    before, end, after = text.rpartition("</body>")  # the last one: the inlined vega-embed has "</body>" in a string
    probe = page.with_name("probe.html")
    probe.write_text(before + PROBE_TAIL.replace("VEGA_IDS", json.dumps(ids)) + end + after, encoding="utf8")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
             "--proxy-server=http://127.0.0.1:9", f"--window-size={WIDTH},800", "--virtual-time-budget=10000",
             "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe result from Chromium (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def assert_renders(result: dict, revisions: int) -> None:
    assert result["errors"] == []
    assert set(result["vega"]) == set(VEGA_PLOTS)
    for name, plot in result["vega"].items():
        assert plot["embedded"] and (plot["lines"] > 0 or plot["inkedCanvas"]), (name, plot)
    assert result["vega"]["search_accuracy_and_reward"]["lines"] >= 2 * revisions  # a line per field and revision
    assert len(result["images"]) == 2 * revisions
    for image in result["images"]:
        (w, h), (shown_w, shown_h) = image["natural"], image["shown"]
        assert image["loaded"] and image["clippedBy"] == [], image
        assert 0 <= image["left"] and image["right"] <= result["viewport"], image  # scaled into the window
        assert shown_w < w and abs(shown_h / shown_w - h / w) < 0.01, image  # aspect kept
    assert result["scrollWidth"] <= result["viewport"]  # nothing sticks out sideways


@pytest.mark.slow
@needs_chromium
def test_plots_show_renders_offline(repo, tmp_path):
    dvc(repo, "plots", "show", "-o", str(tmp_path / "page"))
    assert_renders(browse_offline(tmp_path / "page/index.html"), revisions=1)


@pytest.mark.slow
@needs_chromium
def test_plots_diff_renders_offline(repo, tmp_path):
    dvc(repo, "plots", "diff", "HEAD", "-o", str(tmp_path / "page"))
    assert_renders(browse_offline(tmp_path / "page/index.html"), revisions=2)


@pytest.mark.slow
@needs_chromium
def test_control_dvc_default_page_is_empty_offline(repo, tmp_path):
    """DVC's own page in the same browser: its CDN scripts fail, so no plot is drawn and the images are cut; this
    shows that the network really is closed in these tests and that the probe sees both faults."""
    from dvc_render.html import PAGE_HTML

    (tmp_path / "dvc_default.html").write_text(PAGE_HTML)  # overrides plots.html_template
    dvc(repo, "plots", "show", "-o", str(tmp_path / "page"), "--html-template", str(tmp_path / "dvc_default.html"))
    result = browse_offline(tmp_path / "page/index.html")
    assert any("cdn.jsdelivr.net" in e for e in result["errors"])
    assert not any(plot["embedded"] for plot in result["vega"].values())
    assert any(image["clippedBy"] for image in result["images"])
