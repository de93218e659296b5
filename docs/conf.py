"""Sphinx configuration for sknet's documentation.

Build with ``bash docs/build.sh`` (or ``python -m sphinx -W --keep-going -b html docs
docs/_build/html``). Pages other engineers own (``transfer``, ``scaling``) and the
gallery (``../examples``) are included when they exist: toctree lines written
``@optional NAME`` are kept only if ``NAME.rst`` exists (see ``_optional_pages``).
"""

import importlib
import os
import pkgutil
import sys
import warnings
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

# -- sphinx-gallery ---------------------------------------------------------------------
if HAS_GALLERY:
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
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("source-read", _optional_pages)
    app.connect("source-read", _api_page)
