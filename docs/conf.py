"""Sphinx configuration for sknet's documentation.

Build with ``bash docs/build.sh`` (or ``python -m sphinx -W --keep-going -b html docs
docs/_build/html``). Pages other engineers own (``transfer``, ``scaling``) and the
gallery (``../examples``) are included when they exist: toctree lines written
``@optional NAME`` are kept only if ``NAME.rst`` exists (see ``_optional_pages``).
"""

import importlib
import importlib.util
import os
import pkgutil
import shutil
import sys
import warnings
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("MPLBACKEND", "Agg")

import sknet  # noqa: E402

project = "sknet"
author = "The sknet developers"
copyright = "The sknet developers"
version = release = sknet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]

EXAMPLES = ROOT / "examples"
HAS_GALLERY = EXAMPLES.is_dir() and any(EXAMPLES.rglob("*.py"))
if HAS_GALLERY:
    extensions.append("sphinx_gallery.gen_gallery")

exclude_patterns = ["_build", "README.md", "**.ipynb_checkpoints", "build.sh"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"

# -- autodoc / autosummary / numpydoc ---------------------------------------------------
autodoc_typehints = "none"
numpydoc_show_class_members = True
numpydoc_class_members_toctree = False
# Members inherited from scikit-learn (get_params, set_params, score, set_output, the
# metadata-routing setters ...) are documented by scikit-learn; their docstrings point
# into scikit-learn's own site, so they are left out here (see _skip_foreign_members).
numpydoc_show_inherited_class_members = False
numpydoc_attributes_as_param_list = True

# -- equations: MathJax from a local copy, so an offline reader sees them rendered ---------
# The ``sphinx-mathjax-offline`` package (docs extra) ships MathJax 3.2.2; its TeX input
# with CommonHTML output, the extensions TeX loads on demand and the web fonts are copied
# into the build, and pages load them from there, never from a CDN.
MATHJAX_FILES = ("tex-chtml.js", "input/tex/extensions", "output/chtml/fonts", "a11y",
                 "ui", "sre/mathmaps/base.json",
                 "sre/mathmaps/en.json")


def _mathjax_source():
    spec = importlib.util.find_spec("sphinx-mathjax-offline")  # the package's own name
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the docs need MathJax offline: pip install sknet[docs] "
                           "(sphinx-mathjax-offline)")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"


mathjax_path = "mathjax/tex-chtml.js"


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for rel in MATHJAX_FILES:
        src, dst = source / rel, target / rel
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


# -- links to scikit-learn's documentation (intersphinx, offline) ------------------------
# The build runs offline, so scikit-learn's objects.inv cannot be fetched. An inventory of
# the installed scikit-learn's public API (every name in each public module's __all__,
# at the page scikit-learn's API reference gives it) is written at build time instead,
# and links point to the documentation of that scikit-learn version.
SKLEARN_INVENTORY = HERE / "_build" / "sklearn-objects.inv"


def _sklearn_inventory(path):
    import sklearn

    lines = []
    modules = ["sklearn"] + [f"sklearn.{m}" for m in sklearn.__all__
                             if importlib.util.find_spec(f"sklearn.{m}") is not None]
    for module_name in modules:
        if module_name.split(".")[-1] in {"externals", "experimental", "callback"}:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except ImportError:
            continue
        if module_name != "sklearn":
            lines.append(f"{module_name} py:module 1 api/{module_name}.html -")
        for name in getattr(module, "__all__", ()):
            try:
                obj = getattr(module, name, None)
            except ImportError:  # experimental names need an explicit enable_* import
                continue
            if isinstance(obj, type):
                role = "py:exception" if issubclass(obj, BaseException) else "py:class"
            elif callable(obj):
                role = "py:function"
            else:
                continue
            full = f"{module_name}.{name}"
            page = f"modules/generated/{full}.html"
            lines.append(f"{full} {role} 1 {page}#$ -")
            if role == "py:class":
                for member, value in vars(obj).items():
                    if not member.startswith("_") and callable(value):
                        lines.append(f"{full}.{member} py:method 1 {page}#$ -")
    header = ("# Sphinx inventory version 2\n# Project: scikit-learn\n"
              f"# Version: {sklearn.__version__}\n"
              "# The remainder of this file is compressed using zlib.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    body = zlib.compress(("\n".join(sorted(set(lines))) + "\n").encode("utf-8"))
    path.write_bytes(header.encode("utf-8") + body)
    return sklearn.__version__


_sklearn_version = _sklearn_inventory(SKLEARN_INVENTORY)
intersphinx_mapping = {
    "sklearn": (
        "https://scikit-learn.org/{}/".format(".".join(_sklearn_version.split(".")[:2])),
        str(SKLEARN_INVENTORY),
    ),
}
intersphinx_timeout = 1

# -- sphinx-gallery ---------------------------------------------------------------------
DEFAULT_THUMB = HERE / "_build" / "sknet_thumb.png"


def _draw_default_thumbnail(path):
    """The thumbnail of the examples the gallery shows without running them (they need
    MNIST files or a cluster): a small layered network, drawn at build time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = (4, 6, 6, 3)
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    points = [[(i, (j - (n - 1) / 2) * 0.8) for j in range(n)] for i, n in enumerate(sizes)]
    for left, right in zip(points, points[1:]):
        for x0, y0 in left:
            for x1, y1 in right:
                ax.plot([x0, x1], [y0, y1], color="0.75", lw=0.6, zorder=1)
    for i, column in enumerate(points):
        xs, ys = zip(*column)
        ax.scatter(xs, ys, s=120, color=plt.cm.viridis(i / (len(points) - 1)), zorder=2)
    ax.text(1.5, -3.0, "sknet", ha="center", va="center", fontsize=18, color="0.25")
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_ylim(-3.6, 2.6)
    ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if HAS_GALLERY:
    _draw_default_thumbnail(DEFAULT_THUMB)
    sphinx_gallery_conf = {
        "examples_dirs": str(EXAMPLES),
        "gallery_dirs": "auto_examples",
        # plot_*.py files are executed and their figures embedded; others are shown only
        "filename_pattern": r"/plot_",
        "ignore_pattern": r"__init__\.py|/_",
        "within_subsection_order": "FileNameSortKey",
        "backreferences_dir": "gen_modules/backreferences",
        "doc_module": ("sknet",),
        "download_all_examples": False,
        "remove_config_comments": True,
        "write_computation_times": False,
        "show_memory": False,
        "min_reported_time": 0,
        "matplotlib_animations": False,
        # examples shown without being run get this instead of the placeholder
        "default_thumb_file": str(DEFAULT_THUMB),
    }

# -- HTML -------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sknet {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_sidebars = {"index": [], "install": []}
html_show_sourcelink = True
html_context = {"default_mode": "auto"}

# -- build hygiene: silence third-party noise that is not about our docs -----------------
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")
warnings.filterwarnings("ignore", module="sklearn.*", category=FutureWarning)


# -- optional pages and the generated API list ------------------------------------------
def _optional_pages(app, docname, source):
    """Keep ``@optional NAME`` toctree lines whose page exists; drop the others."""
    lines = []
    for line in source[0].splitlines():
        stripped = line.strip()
        if stripped.startswith("@optional "):
            name = stripped.split(None, 1)[1]
            if name.startswith("/"):  # absolute document name
                target = HERE / name.lstrip("/")
            else:
                target = HERE / Path(docname).parent / name
            if name.lstrip("/") == "auto_examples/index":
                exists = HAS_GALLERY
            else:
                exists = target.with_suffix(".rst").is_file()
            if exists:
                lines.append(line.replace("@optional ", ""))
            continue
        lines.append(line)
    source[0] = "\n".join(lines) + "\n"


def _public_submodules():
    for info in pkgutil.iter_modules(sknet.__path__):
        if info.name.startswith("_") or info.name == "kernels":
            continue
        module = importlib.import_module(f"sknet.{info.name}")
        if getattr(module, "__all__", None):
            yield module


def _autosummary(module_name, names):
    out = [f".. currentmodule:: {module_name}", "", ".. autosummary::",
           "   :toctree: gen_modules/", "   :nosignatures:", ""]
    out += [f"   {name}" for name in names]
    return out + [""]


def _api_entries():
    """``(module_name, names)`` for ``sknet.__all__`` and public subpackages' ``__all__``.

    A subpackage lists only what the top level does not re-export, and only classes and
    functions (constants are described in the module's docstring).
    """
    # classes first, then functions, each alphabetically
    top = sorted((n for n in sknet.__all__ if n != "__version__"),
                 key=lambda n: (not isinstance(getattr(sknet, n), type), n.lower()))
    entries = [("sknet", top)]
    top_objects = {id(getattr(sknet, n)) for n in top}
    for module in _public_submodules():
        names = [n for n in module.__all__ if id(getattr(module, n)) not in top_objects
                 and callable(getattr(module, n))]
        entries.append((module.__name__, names))
    return entries


def _write_stubs(entries):
    """One page per public name in ``gen_modules/`` (autosummary links to them)."""
    out_dir = HERE / "gen_modules"
    out_dir.mkdir(exist_ok=True)
    wanted = {f"{m}.{n}.rst" for m, names in entries for n in names}
    for old in out_dir.glob("*.rst"):  # names no longer public would be orphan pages
        if old.name not in wanted:
            old.unlink()
    for module_name, names in entries:
        module = importlib.import_module(module_name)
        for name in names:
            obj = getattr(module, name)
            qualname = f"{module_name}.{name}"
            lines = [qualname, "=" * len(qualname), "", f".. currentmodule:: {module_name}", ""]
            if isinstance(obj, type):
                lines += [f".. autoclass:: {name}", "   :members:", "   :inherited-members:",
                          ""]
            else:
                lines += [f".. autofunction:: {name}", ""]
            if HAS_GALLERY:
                lines += [f".. minigallery:: {qualname}", "   :add-heading: Gallery examples",
                          ""]
            text = "\n".join(lines)
            stub = out_dir / f"{qualname}.rst"
            if not stub.is_file() or stub.read_text() != text:
                stub.write_text(text)


def _api_list(entries):
    out = []
    for module_name, names in entries:
        if module_name == "sknet":
            out += ["Estimators and tools", "--------------------", ""]
            out += _autosummary("sknet", names)
            continue
        module = importlib.import_module(module_name)
        title = f":mod:`{module_name}`"
        out += [title, "-" * len(title), "", f".. automodule:: {module_name}",
                ""]
        reexported = sorted(n for n in module.__all__ if n not in names
                            and callable(getattr(module, n)) and hasattr(sknet, n))
        if reexported:
            refs = ", ".join(f":obj:`sknet.{n}`" for n in reexported)
            out += [f"Also available from the top level: {refs}.", ""]
        if names:
            out += _autosummary(module_name, names)
    return out


API_ENTRIES = _api_entries()
_write_stubs(API_ENTRIES)
autosummary_generate = False


def _api_page(app, docname, source):
    if docname == "api":
        source[0] = source[0].replace(".. sknet-api-list::", "\n".join(_api_list(API_ENTRIES)))


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document only members defined in sknet (inherited ones are documented upstream)."""
    if what != "class":
        return None
    target = obj.fget if isinstance(obj, property) else obj
    module = getattr(target, "__module__", None)
    if module is not None and not module.startswith("sknet"):
        return True
    return None


def setup(app):
    app.connect("build-finished", _copy_mathjax)
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("source-read", _optional_pages)
    app.connect("source-read", _api_page)
