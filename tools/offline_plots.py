"""Pages of `dvc plots show` / `dvc plots diff` that render without internet.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so offline its Vega plots stay empty, and its
image boxes crop a figure wider than the window. `python -m tools.offline_plots [REPO ...]` (run by `make venv` for
this project and by `make demo` for ./demo) writes `.dvc/offline_plots.html` in each repository: a page template
(DVC's `plots.html_template`) with the three libraries inlined, bundled locally by vl-convert-python (about 0.9 MB,
so generated and listed in `.dvc/.gitignore`, not committed), and CSS that scales images to the window; then sets
`plots.html_template` in the repository's `.dvc/config.local` (machine-local, like the template). The pages DVC
writes are then self-contained.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TEMPLATE_NAME = "offline_plots.html"  # in .dvc/; DVC resolves a relative plots.html_template against .dvc/
MARKER = "<!-- ednas offline plots template:"  # first line; says which libraries are inlined

# DVC fills {refresh_tag} and {plot_divs}; {scripts} (its CDN <script> tags) is left out on purpose. A Vega plot
# div runs `vegaEmbed('#id', spec)` inline while the page is parsed, so the libraries come first, in <head>.
PAGE = """{marker} {versions} -->
<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <script>
{bundle}
    </script>
    <style>
        table { border-spacing: 15px; }
        /* DVC's image boxes: let them wrap and shrink to the window, keeping the aspect ratio (no cropping) */
        div[style*="nowrap"] { white-space: normal !important; }
        div[style*="inline-block"] { max-width: calc(100% - 16px); box-sizing: border-box; vertical-align: top; }
        div[style*="inline-block"] img { max-width: 100%; height: auto; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""

DVC_PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")


def _vegalite_version() -> str | None:
    """The newest Vega-Lite 5 that vl-convert bundles: DVC's plot templates are Vega-Lite 5 specs."""
    import vl_convert

    fives = [v for v in vl_convert.get_vegalite_versions() if v.startswith("5.")]
    return max(fives, key=lambda v: tuple(int(p) for p in v.split("."))) if fives else None


def versions() -> str:
    import vl_convert

    vl = _vegalite_version()
    return (f"vl-convert-python {vl_convert.__version__}: vega {vl_convert.get_vega_version()}, "
            f"vega-lite {vl or 'default'}, vega-embed {vl_convert.get_vega_embed_version()}")


def page_template() -> str:
    """The whole template: vega-embed, vega-lite and vega inlined in an isolating function (the bundle's
    top-level names must not clash with DVC's `var spec`); it sets window.vegaEmbed, window.vega, window.vegaLite."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=_vegalite_version())
    bundle = bundle.replace("</script", "<\\/script")  # `<\/` means the same in JS strings, regexes and comments
    if "<!--" in bundle or any(p in bundle for p in DVC_PLACEHOLDERS):
        raise RuntimeError("the vega bundle contains text that breaks an inline <script> or DVC's placeholders")
    page = PAGE.replace("{marker}", MARKER).replace("{versions}", versions())
    return page.replace("{bundle}", f"(() => {{\n{bundle}\n}})();")


def install(repo: Path) -> Path:
    """Writes `<repo>/.dvc/offline_plots.html` (unless already there for this vl-convert), lists it in
    `.dvc/.gitignore` and points the repository's local DVC config at it; returns the template's path."""
    dvc_dir = Path(repo) / ".dvc"
    if not dvc_dir.is_dir():
        raise FileNotFoundError(f"{repo} is not a DVC repository (no .dvc folder)")
    path = dvc_dir / TEMPLATE_NAME
    ignore = dvc_dir / ".gitignore"  # generated: never committed (DVC keeps config.local, tmp, cache there too)
    listed = ignore.read_text(encoding="utf8") if ignore.is_file() else ""
    if f"/{TEMPLATE_NAME}" not in listed.splitlines():
        ignore.write_text(listed + ("" if listed.endswith("\n") or not listed else "\n") + f"/{TEMPLATE_NAME}\n",
                          encoding="utf8")
    first = f"{MARKER} {versions()} -->"
    if not path.is_file() or path.read_text(encoding="utf8").split("\n", 1)[0] != first:
        tmp = dvc_dir / "tmp" / f"{TEMPLATE_NAME}.tmp"  # DVC's scratch folder, ignored
        tmp.parent.mkdir(exist_ok=True)
        tmp.write_text(page_template(), encoding="utf8")
        tmp.replace(path)
    subprocess.run([sys.executable, "-m", "dvc", "config", "--local", "plots.html_template", TEMPLATE_NAME],
                   cwd=repo, check=True, capture_output=True, text=True)
    return path


def main(argv: list[str]) -> int:
    for repo in argv or ["."]:
        try:
            path = install(Path(repo))
        except (OSError, RuntimeError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", "") or err
            print(f"offline_plots: {repo}: {str(detail).strip()}", file=sys.stderr)
            return 1
        print(f"offline_plots: {path} ({versions()}) is the plots.html_template of {Path(repo).resolve()}: "
              "its `dvc plots show` / `dvc plots diff` pages render offline")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
