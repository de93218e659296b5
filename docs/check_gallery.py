"""Check the built gallery: every executed example rendered at least one figure.

Run after the HTML build (``bash docs/build.sh`` does). For each ``examples/**/plot_*.py``
it parses ``docs/_build/html/auto_examples/<same path>.html`` and requires an ``<img>``
of one of the example's own figures (``sphx_glr_plot_<name>_NNN.png``) whose file exists
in the build, and a total running time under the limit. Exits 1 with the problems found.
"""

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIME_RE = re.compile(r"Total running time of the script:\s*\(\s*(\d+)\s*minutes?\s*"
                     r"([\d.]+)\s*seconds?\s*\)")


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src")
            if src:
                self.srcs.append(src)


def check(examples_dir, html_dir, max_seconds):
    problems, rows = [], []
    scripts = sorted(p for p in examples_dir.rglob("plot_*.py"))
    if not scripts:
        problems.append(f"no plot_*.py examples found in {examples_dir}")
    for script in scripts:
        rel = script.relative_to(examples_dir).with_suffix(".html")
        page = html_dir / "auto_examples" / rel
        if not page.is_file():
            problems.append(f"{script.name}: no page {page}")
            continue
        text = page.read_text(encoding="utf-8")
        parser = _Images()
        parser.feed(text)
        own = re.compile(rf"sphx_glr_{re.escape(script.stem)}_\d+\.png$")
        figures = [s for s in parser.srcs if own.search(s)]
        missing = [s for s in figures if not (page.parent / s).resolve().is_file()]
        match = TIME_RE.search(re.sub(r"<[^>]+>", "", text))
        seconds = int(match.group(1)) * 60 + float(match.group(2)) if match else None
        rows.append((str(rel), len(figures), seconds))
        if not figures:
            problems.append(f"{script.name}: its page shows no figure of its own")
        if missing:
            problems.append(f"{script.name}: figure files missing from the build: {missing}")
        if seconds is None:
            problems.append(f"{script.name}: no running time on its page")
        elif seconds > max_seconds:
            problems.append(f"{script.name}: ran {seconds:.1f} s (limit {max_seconds} s)")
    return rows, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=HERE.parent / "examples")
    parser.add_argument("--html", type=Path, default=HERE / "_build" / "html")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    rows, problems = check(args.examples, args.html, args.max_seconds)
    for rel, n_figures, seconds in rows:
        time = "?" if seconds is None else f"{seconds:5.1f} s"
        print(f"{rel:60s} {n_figures:2d} figure(s)  {time}")
    if problems:
        print("\n".join(["", "Gallery check FAILED:"] + [f"  - {p}" for p in problems]))
        return 1
    print(f"Gallery check passed: {len(rows)} example(s), each with its figures.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
