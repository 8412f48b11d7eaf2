"""Build udplab's bilingual static site into site/: both READMEs, the notebooks' READMEs and every
notebook with its outputs, each page with its twin in the other language.

    python scripts/site.py [--executed DIR] [--out site]

Notebooks are converted by nbconvert (the Jupyter project's own converter: the same look as
JupyterLab, plots inline as data URIs) through the template in scripts/site_template/, which
fetches nothing from elsewhere: math is turned into MathML here, at build time (latex2mathml),
and every browser draws MathML itself; the Chinese glyphs come from the font udplab ships.

A notebook is executed once, in a kernel of this Python, unless DIR (where tests/test_notebooks.py
leaves the notebooks it ran, when UDPLAB_EXECUTED_NOTEBOOKS names a folder) holds a run of the
very same cells.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import nbformat
from bs4 import BeautifulSoup
from jinja2 import pass_context
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from latex2mathml.converter import convert as latex_to_mathml
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "site_template"
FONT = ROOT / "python" / "udplab" / "fonts" / "udplab-sans-sc.otf"
LANGUAGES = {"en": "English", "zh-CN": "中文"}
NAV = {  # the bar on top of every page: (label, page), then the notebooks by number
    "en": [("udplab", "README.md"), ("Notebooks", "notebooks/README.md")],
    "zh-CN": [("udplab", "README.zh-CN.md"), ("笔记本", "notebooks/zh/README.md")],
}


@dataclass(frozen=True)
class Page:
    source: str  # path in the repository
    url: str     # path in the site
    lang: str
    twin: str    # the source of the same page in the other language


def pages() -> list[Page]:
    """Every page of the site, each with its twin."""
    pairs = [("README.md", "index.html", "README.zh-CN.md", "zh/index.html"),
             ("notebooks/README.md", "notebooks/index.html",
              "notebooks/zh/README.md", "zh/notebooks/index.html"),
             ("notebooks/LESSONS.md", "notebooks/lessons.html",
              "notebooks/zh/LESSONS.md", "zh/notebooks/lessons.html")]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        name = notebook.name
        pairs.append((f"notebooks/{name}", f"notebooks/{notebook.stem}.html",
                      f"notebooks/zh/{name}", f"zh/notebooks/{notebook.stem}.html"))
    found = []
    for en, en_url, zh, zh_url in pairs:
        found += [Page(en, en_url, "en", zh), Page(zh, zh_url, "zh-CN", en)]
    return found


def slug(text: str) -> str:
    """A heading's anchor as the code host makes it (what the Markdown's links use): lower case,
    punctuation dropped, spaces to hyphens; Chinese kept."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


class MathMLRenderer(IPythonRenderer):
    """Markdown as nbconvert renders it, with $...$ and $$...$$ written out as MathML."""

    def block_math(self, body: str) -> str:
        return str(latex_to_mathml(body, display="block"))

    def inline_math(self, body: str) -> str:
        return str(latex_to_mathml(body))

    def latex_environment(self, name: str, body: str) -> str:
        return str(latex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display="block"))


class SiteExporter(HTMLExporter):
    """nbconvert's HTML exporter with the site's template and MathML for math."""

    @pass_context
    def markdown2html(self, context: Any, source: str) -> str:
        cell = context.get("cell", {})
        renderer = MathMLRenderer(escape=False, attachments=cell.get("attachments", {}),
                                  embed_images=self.embed_images,
                                  anchor_link_text=self.anchor_link_text)
        return str(MarkdownWithMath(renderer=renderer).render(source))


def kernel_specs(root: Path) -> tuple[KernelSpecManager, str]:
    """A kernel spec that runs this very Python, so the notebooks see this udplab."""
    spec = root / "udplab-site"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "udplab site", "language": "python"}))
    return KernelSpecManager(kernel_dirs=[str(root)]), "udplab-site"


def same_cells(a: nbformat.NotebookNode, b: nbformat.NotebookNode) -> bool:
    return [(c.cell_type, c.source) for c in a.cells] == [(c.cell_type, c.source) for c in b.cells]


def executed(source: Path, executed_dir: Path | None, specs: tuple[KernelSpecManager, str]
             ) -> tuple[nbformat.NotebookNode, str]:
    """The notebook with its outputs: a run the tests left, if it is of these very cells, or a
    run now. Returns it and where it came from."""
    nb = nbformat.read(source, as_version=4)
    if executed_dir is not None:
        done = executed_dir / source.relative_to(ROOT / "notebooks")
        if done.exists():
            ran = nbformat.read(done, as_version=4)
            if same_cells(ran, nb):
                return ran, f"reused {done}"
    manager, name = specs
    start = time.monotonic()
    kernel = KernelManager(kernel_name=name, kernel_spec_manager=manager)
    # In a folder of its own, as a learner's first run: notebooks 7 and 8 write the lab files
    # they grade there, which must not land in the repository's notebooks/.
    with tempfile.TemporaryDirectory(prefix="udplab-site-") as folder:
        try:
            NotebookClient(nb, km=kernel, timeout=60, kernel_name=name,
                           resources={"metadata": {"path": folder}}).execute()
        finally:
            if kernel.has_kernel:
                kernel.shutdown_kernel(now=True)
    return nb, f"executed in {time.monotonic() - start:.1f} s"


def as_notebook(markdown: str) -> nbformat.NotebookNode:
    """A Markdown file as a notebook of one cell, so every page goes through one template."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown)])


def title_of(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        found = re.search(r"^#\s+(.+)$", cell.source, re.M)
        if cell.cell_type == "markdown" and found:
            return re.sub(r"[`*]", "", found.group(1)).strip()
    return "udplab"


def relative(url: str, page: Page) -> str:
    return posixpath.relpath(url, posixpath.dirname(page.url) or ".")


class Linker:
    """Turns the repository links of a page into links within the site; a linked file that is
    no page is copied beside the pages, under files/."""

    def __init__(self, site: Path, all_pages: list[Page]) -> None:
        self.site = site
        self.urls = {p.source: p.url for p in all_pages}

    def target(self, href: str, page: Page) -> str | None:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or not parts.path:
            return None  # another site, mail, data:, or a link within the page
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page.source),
                                                 unquote(parts.path)))
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        if path in self.urls:
            return relative(self.urls[path], page) + fragment
        file = ROOT / path
        if file.is_file():
            copy = self.site / "files" / path
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, copy)
            return relative(f"files/{path}", page) + fragment
        return None  # left as it is: the site's test reports it


def finish(body: str, page: Page, linker: Linker) -> str:
    """The page's language, anchors the Markdown's links expect, links within the site."""
    soup = BeautifulSoup(body, "html.parser")
    soup.html["lang"] = page.lang
    seen: dict[str, int] = {}
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        for anchor in heading.find_all("a", class_="anchor-link"):
            anchor.decompose()
        name = slug(heading.get_text())
        seen[name] = seen.get(name, -1) + 1
        heading["id"] = name if seen[name] == 0 else f"{name}-{seen[name]}"
        link = soup.new_tag("a", attrs={"class": "anchor-link", "href": f"#{heading['id']}"})
        link.string = "¶"
        heading.append(link)
    for tag, attribute in (("a", "href"), ("img", "src")):
        for element in soup.find_all(tag):
            value = element.get(attribute)
            if isinstance(value, str):
                new = linker.target(value, page)
                if new is not None:
                    element[attribute] = new
    return str(soup)


def build(out: Path, executed_dir: Path | None) -> None:
    all_pages = pages()
    by_source = {p.source: p for p in all_pages}
    if out.exists():
        shutil.rmtree(out)
    (out / "assets").mkdir(parents=True)
    shutil.copyfile(FONT, out / "assets" / FONT.name)
    shutil.copyfile(FONT.parent / "OFL.txt", out / "assets" / "OFL.txt")  # the font's licence
    linker = Linker(out, all_pages)
    exporter = SiteExporter(template_name="udplab_site",
                            extra_template_basedirs=[str(TEMPLATES)])
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    with tempfile.TemporaryDirectory() as kernels:
        specs = kernel_specs(Path(kernels))
        for page in all_pages:
            source = ROOT / page.source
            if source.suffix == ".ipynb":
                nb, how = executed(source, executed_dir, specs)
            else:
                nb, how = as_notebook(source.read_text(encoding="utf-8")), "converted"
            nb.metadata["title"] = title_of(nb)
            folder = "notebooks" if page.lang == "en" else "notebooks/zh"
            nav = [(label, relative(by_source[src].url, page)) for label, src in NAV[page.lang]]
            nav += [(nb_path.stem[:2], relative(by_source[f"{folder}/{nb_path.name}"].url, page))
                    for nb_path in notebooks]
            twin = by_source[page.twin]
            resources = {
                "metadata": {"name": title_of(nb), "path": str(source.parent)},
                "site": {
                    "root": "../" * page.url.count("/"),
                    "nav": nav,
                    "twin": relative(twin.url, page),
                    "twin_lang": twin.lang,
                    "twin_label": LANGUAGES[twin.lang],
                },
            }
            body, _ = exporter.from_notebook_node(nb, resources=resources)
            target = out / page.url
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(finish(body, page, linker), encoding="utf-8")
            print(f"{page.url:34} <- {page.source} ({how})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "site")
    parser.add_argument("--executed", type=Path, default=None,
                        help="notebooks the tests ran (tests/test_notebooks.py)")
    args = parser.parse_args()
    start = time.monotonic()
    build(args.out.resolve(), args.executed.resolve() if args.executed else None)
    print(f"site built in {time.monotonic() - start:.1f} s: {args.out / 'index.html'}")


if __name__ == "__main__":
    main()
