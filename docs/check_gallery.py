"""Check the built gallery: every executed example rendered all of its figures.

Run after the HTML build (``bash docs/build.sh`` does). For each executed example
(``examples/**/plot_*.py``, sphinx-gallery's ``filename_pattern``) it requires that

* the run produced at least one figure (sphinx-gallery saves them as
  ``docs/auto_examples/images/sphx_glr_<name>_NNN.png``);
* the built page ``docs/_build/html/auto_examples/<same path>.html`` shows every one of
  them in an ``<img>`` (and no figure of its own that the run did not produce), and each
  image file the page points to is a PNG in the build;
* the page reports a total running time. A time over the limit (60 s by default) is
  printed as a warning; it fails the check only with ``--strict-time``, since wall times
  on a shared machine are noisy (the brief keeps timings out of pass/fail tests).

Every other example (not executed: it needs data or a cluster the build does not have)
must still have a page, listed in the gallery's index. Every example has a thumbnail of
its own in the index (not sphinx-gallery's placeholder), and no page of the build loads a
script or stylesheet from the network (equations render offline). Exits 1 with the
problems found.
"""

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIME_RE = re.compile(r"Total running time of the script:\s*\(\s*(\d+)\s*minutes?\s*"
                     r"([\d.]+)\s*seconds?\s*\)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.loads = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        # what the browser fetches to show the page: scripts and stylesheets
        if tag == "script" and attrs.get("src"):
            self.loads.append(attrs["src"])
        elif tag == "link" and "stylesheet" in (attrs.get("rel") or "") and attrs.get("href"):
            self.loads.append(attrs["href"])


def _parse(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _is_png(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == PNG_MAGIC
    except OSError:
        return False


def _examples(examples_dir):
    """(executed, shown only): the gallery's scripts, as sphinx-gallery selects them."""
    scripts = sorted(p for p in examples_dir.rglob("*.py")
                     if p.name != "__init__.py" and not p.name.startswith("_"))
    executed = [p for p in scripts if "/plot_" in "/" + p.relative_to(examples_dir).as_posix()]
    return executed, [p for p in scripts if p not in executed]


def check_example(script, examples_dir, gallery_src, html_dir, max_seconds):
    """``(row, problems)`` for one executed example."""
    problems = []
    rel = script.relative_to(examples_dir).with_suffix(".html")
    page = html_dir / "auto_examples" / rel
    if not page.is_file():
        return (str(rel), 0, 0, None), [f"{script.name}: no page {page}"]
    own = re.compile(rf"sphx_glr_{re.escape(script.stem)}_(\d{{3}})\.png$")
    # what the run produced: sphinx-gallery saves each figure next to the generated rst
    produced = sorted(p.name for p in (gallery_src / rel.parent / "images").glob("*.png")
                      if own.search(p.name))
    shown = [src for src in _parse(page).images if own.search(src)]
    shown_names = {Path(src).name for src in shown}
    if not produced:
        problems.append(f"{script.name}: the run produced no figure (is plot_gallery off?)")
    missing = [name for name in produced if name not in shown_names]
    if missing:
        problems.append(f"{script.name}: figures produced but not on the page: {missing}")
    stray = sorted(shown_names - set(produced))
    if stray:
        problems.append(f"{script.name}: the page shows figures the run did not produce "
                        f"(stale build?): {stray}")
    broken = [src for src in shown if not _is_png((page.parent / src).resolve())]
    if broken:
        problems.append(f"{script.name}: image files missing from the build or not PNG: "
                        f"{broken}")
    match = TIME_RE.search(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
    seconds = int(match.group(1)) * 60 + float(match.group(2)) if match else None
    if seconds is None:
        problems.append(f"{script.name}: no running time on its page")
    return (str(rel), len(produced), len(shown_names & set(produced)), seconds), problems


def check(examples_dir, html_dir, max_seconds, gallery_src=HERE / "auto_examples"):
    problems, rows = [], []
    executed, shown_only = _examples(examples_dir)
    if not executed:
        problems.append(f"no plot_*.py examples found in {examples_dir}")
    for script in executed:
        row, found = check_example(script, examples_dir, gallery_src, html_dir, max_seconds)
        rows.append(row)
        problems += found
    index = html_dir / "auto_examples" / "index.html"
    listed = set()
    if index.is_file():
        listed = {href.split("#")[0] for href in _parse(index).links}
    else:
        problems.append(f"no gallery index {index}")
    for script in executed + shown_only:
        rel = script.relative_to(examples_dir).with_suffix(".html").as_posix()
        if not (html_dir / "auto_examples" / rel).is_file():
            if script in shown_only:
                problems.append(f"{script.name}: no page in the gallery")
        elif index.is_file() and rel not in listed:
            problems.append(f"{script.name}: not listed in the gallery index")
    return rows, [s.relative_to(examples_dir).as_posix() for s in shown_only], problems


REMOTE = re.compile(r"^(https?:)?//")
#: sphinx-gallery's placeholder for an example without a figure of its own
PLACEHOLDER_THUMB = "no_image"


def check_offline(html_dir):
    """Pages load no script or stylesheet from the network (MathJax comes from the
    build's own ``_static/mathjax``), so an offline reader sees the equations."""
    problems = []
    mathjax = html_dir / "_static" / "mathjax" / "tex-chtml.js"
    if not mathjax.is_file():
        problems.append(f"no local MathJax at {mathjax}")
    for page in sorted(html_dir.rglob("*.html")):
        remote = [src for src in _parse(page).loads if REMOTE.match(src)]
        if remote:
            problems.append(f"{page.relative_to(html_dir)} loads from the network: {remote}")
    return problems


def check_thumbnails(examples_dir, html_dir):
    """Every example has its own thumbnail in the gallery index (no placeholder)."""
    index = html_dir / "auto_examples" / "index.html"
    if not index.is_file():
        return []
    images = _parse(index).images
    problems = []
    for script in sorted(p for p in examples_dir.rglob("*.py")
                         if p.name != "__init__.py" and not p.name.startswith("_")):
        thumb = [src for src in images if f"sphx_glr_{script.stem}_thumb." in src]
        if not thumb:
            problems.append(f"{script.name}: no thumbnail in the gallery index")
        elif not _is_png((index.parent / thumb[0]).resolve()):
            problems.append(f"{script.name}: thumbnail {thumb[0]} missing or not a PNG")
    if any(PLACEHOLDER_THUMB in src for src in images):
        problems.append("the gallery index shows sphinx-gallery's placeholder thumbnail")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=HERE.parent / "examples")
    parser.add_argument("--html", type=Path, default=HERE / "_build" / "html")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--strict-time", action="store_true",
                        help="fail (not only warn) when an example runs over --max-seconds")
    args = parser.parse_args(argv)
    rows, shown_only, problems = check(args.examples, args.html, args.max_seconds)
    problems += check_thumbnails(args.examples, args.html)
    problems += check_offline(args.html)
    slow = [f"{rel}: ran {seconds:.1f} s (limit {args.max_seconds:g} s)"
            for rel, _, _, seconds in rows if seconds is not None and seconds > args.max_seconds]
    if slow:
        print("\n".join(["WARNING: examples over the time limit:"] + [f"  - {m}" for m in slow]))
        if args.strict_time:
            problems += slow
    print("Executed examples: figures produced / shown on the page, running time")
    for rel, n_produced, n_shown, seconds in rows:
        time = "?" if seconds is None else f"{seconds:5.1f} s"
        print(f"  {rel:55s} {n_produced:2d} / {n_shown:2d}  {time}")
    if shown_only:
        print("Shown, not executed (they need data or a cluster): " + ", ".join(shown_only))
    if problems:
        print("\n".join(["", "Gallery check FAILED:"] + [f"  - {p}" for p in problems]))
        return 1
    print(f"Gallery check passed: {len(rows)} executed example(s), each page with all of "
          "its figures.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
