"""The documentation: the MkDocs site in docs/ builds with --strict, and what points into it resolves.

`mkdocs build --strict` (with the `validation:` settings of mkdocs.yml) fails on a link to a
missing page or heading and on a page left out of the nav. The README's links are checked
here, since MkDocs does not read the README, and so is the spec reference's example, which a
reader copies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (MkDocs' default)."""
    text = re.sub(r"[`*_]{2,}|`", "", heading)  # inline code and bold marks are not in the text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    anchors, fence = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (match := re.match(r"#{1,6} (.*)", line)):
            anchors.add(_slug(match.group(1)))
    return anchors


def test_mkdocs_build_strict(tmp_path):
    """The site builds without a single warning (broken link or anchor, page not in the nav)."""
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs and mkdocs-material are not installed: pip install -e '.[dev]' installs them")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file()
    assert (site / "point-in-time" / "index.html").is_file()
    assert not (ROOT / "site").exists(), "mkdocs wrote into the checkout"


def test_readme_links_into_docs_resolve():
    """Every relative link of the README names a file that exists, and a heading on it when it has #."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link for link in links if not re.match(r"[a-z]+://|#|mailto:", link)]
    assert any(link.startswith("docs/") for link in relative), "the README links into docs/"
    for link in relative:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), f"README.md links to {link}, which does not exist"
        if anchor:
            assert anchor in _anchors(target), f"README.md links to {link}: no such heading on {path}"


def test_readme_is_short_and_starts_with_the_two_commands():
    """The README is the front page (about 10 KB); the details live in docs/."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 12_000, (
        f"README.md is {len(readme.encode())} bytes: move details into a page of docs/ and link it")
    first_block = readme.split("```", 2)[1]
    assert "scripts/demo.sh" in first_block and "scripts/test.sh" in first_block


def test_every_decision_is_listed():
    """docs/decisions/index.md links every decision record (the strict build checks the nav)."""
    index = (DOCS / "decisions" / "index.md").read_text()
    records = sorted(p.name for p in (DOCS / "decisions").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert records, "no decision records found"
    for name in records:
        assert f"]({name})" in index, f"docs/decisions/index.md does not link {name}"


def test_no_reference_to_files_outside_the_repo():
    """Docs, code and tests cite only what the repository holds (design notes kept elsewhere are not)."""
    outside = ["DESIGN" + ".md", "NOTES" + ".md", "/work/" + "shared", "../" + "shared"]
    suffixes = {".md", ".py", ".sql", ".yml", ".yaml", ".sh", ".toml", ".txt", ".cfg", ".in"}
    skip = {".git", ".venv", ".venvs", "dbt_packages", "target", "site", "__pycache__", ".data", "logs",
            "featurehouse.egg-info", ".hypothesis", ".ruff_cache"}
    found = []
    for folder, folders, files in os.walk(ROOT):
        folders[:] = [name for name in folders if name not in skip]  # pruned: .venv alone holds ~10^5 files
        for name in files:
            path = Path(folder) / name
            if path.suffix in suffixes:
                text = path.read_text(errors="replace")
                found += [f"{path.relative_to(ROOT)}: {word}" for word in outside if word in text]
    assert not found, found


def test_spec_reference_example_compiles(tmp_path):
    """The example spec of docs/spec-reference.md is a valid spec: it loads and compiles."""
    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    page = (DOCS / "spec-reference.md").read_text()
    example = re.search(r"An example.*?```yaml\n(.*?)```", page, re.S)
    assert example, "docs/spec-reference.md has no example spec"
    (tmp_path / "featurehouse.yml").write_text("project: docs_example\n")
    (tmp_path / "feature_specs").mkdir()
    (tmp_path / "feature_specs" / "example.yml").write_text(example.group(1))
    repo = load_repo(tmp_path)
    files = compiler.compile_repo(repo, "duckdb")
    assert {"fv_driver_hourly_stats.sql", "ts_driver_training.sql", "schema.yml"} <= set(files)
