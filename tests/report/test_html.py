"""markdown_to_html: the Markdown subset the report writes as self-contained HTML."""

from __future__ import annotations

import base64

from ednas_core.report import markdown_to_html

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def test_headings_lists_tables_code_and_paragraphs(tmp_path):
    text = "\n".join(["# Title", "", "Some `code` and **bold** and *em* text.", "", "- one", "- two <3", "",
                      "| a | b\\|c |", "|---|---|", "| 1 | [x](y) |", "", "```json", '{"k": 1}', "```"])
    page = markdown_to_html(text, tmp_path, "T & T")
    assert "<title>T &amp; T</title>" in page
    assert "<h1>Title</h1>" in page
    assert "<p>Some <code>code</code> and <strong>bold</strong> and <em>em</em> text.</p>" in page
    assert "<ul><li>one</li><li>two &lt;3</li></ul>" in page
    assert ("<table><thead><tr><th>a</th><th>b|c</th></tr></thead><tbody><tr><td>1</td>"
            '<td><a href="y">x</a></td></tr></tbody></table>') in page
    assert "<pre><code>{&quot;k&quot;: 1}</code></pre>" in page
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body>\n</html>\n")


def test_png_images_are_inlined_and_missing_ones_linked(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures/a.png").write_bytes(PNG)
    page = markdown_to_html("![A](figures/a.png)\n![B](figures/b.png)", tmp_path)
    data = base64.b64encode(PNG).decode("ascii")
    assert f'<figure><img src="data:image/png;base64,{data}" alt="A"></figure>' in page
    assert '<figure><img src="figures/b.png" alt="B"></figure>' in page
