"""Where a feature repo's dbt macros come from, and whether they match this featurehouse.

The Python package ships featurehouse's dbt package (``dbt_project.yml`` and ``macros/``):
from a source checkout it is the checkout's root; from a wheel it is the copy under
``featurehouse/dbt_package/`` that the build puts there. A repo made by ``featurehouse init``
keeps a versioned copy of it in ``vendor/featurehouse/`` and names it in ``packages.yml``
(``local: vendor/featurehouse``), so a teammate's ``git clone``, ``pip install featurehouse``,
``dbt deps`` needs no path to anyone's checkout. ``featurehouse compile`` refreshes that copy,
``compile --check`` fails when it differs from the installed package, and compile, sync and
the SDK stop with one line when the macros dbt uses are of another featurehouse version
(docs/decisions/0013-how-a-repo-finds-the-macros.md).

Only the standard library at import time: setup.py loads this file to build the wheel.
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE_NAME = "featurehouse"
VENDOR_DIR = "vendor/featurehouse"  # relative to the feature repo's root, as packages.yml names it
SHIPPED_DIR = "dbt_package"  # inside the installed Python package (wheels only)

_HEADER = """\
# featurehouse's dbt package (its macros), as shipped with the Python package featurehouse.
# In a feature repo this is a copy that `featurehouse compile` keeps equal to the installed
# featurehouse: do not edit it; commit it, so that a clone builds without anyone's checkout.
"""


def package_dbt_project(root_project_text: str) -> str:
    """The package's own dbt_project.yml, made from the checkout's (name, version, dbt range, macros)."""
    lines = [_HEADER.rstrip("\n"), f"name: {PACKAGE_NAME}"]
    for key in ("version", "require-dbt-version"):
        found = re.search(rf"^{key}:.*$", root_project_text, re.MULTILINE)
        if found is None:
            raise ValueError(f"dbt_project.yml has no '{key}:' line")
        lines.append(found[0].strip())
    lines += ["config-version: 2", 'macro-paths: ["macros"]']
    return "\n".join(lines) + "\n"


def package_files(source: Path) -> dict[str, bytes]:
    """The files of featurehouse's dbt package at ``source`` (a checkout root or a shipped copy)."""
    project = (source / "dbt_project.yml").read_text()
    if not project.startswith(_HEADER):  # the checkout's root: also the example repo's project
        project = package_dbt_project(project)
    files = {"dbt_project.yml": project.encode()}
    for path in sorted((source / "macros").rglob("*.sql")):
        files[path.relative_to(source).as_posix()] = path.read_bytes()
    return files


def shipped_package() -> Path:
    """The folder of the dbt package that came with this Python package."""
    from featurehouse.errors import ConfigError

    here = Path(__file__).resolve().parent.parent
    candidates = [here / SHIPPED_DIR, here.parent]  # a wheel's copy; a source checkout's root
    for folder in candidates:
        if (folder / "macros").is_dir() and project_name(folder / "dbt_project.yml") == PACKAGE_NAME:
            return folder
    raise ConfigError(
        f"featurehouse's dbt package (dbt_project.yml and macros/) is missing from this install at {here}; "
        "reinstall it: pip install --force-reinstall featurehouse"
    )


def _top_level(path: Path, key: str) -> str | None:
    """A top-level scalar of a small YAML file, without a YAML parser (dbt_project.yml is plain)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    found = re.search(rf"^{key}:\s*['\"]?([^'\"#\s]+)['\"]?\s*(#.*)?$", text, re.MULTILINE)
    return found[1] if found else None


def project_name(path: Path) -> str | None:
    """The ``name:`` of the dbt_project.yml at ``path``, or None when it has none."""
    return _top_level(path, "name")


def local_packages(root: Path) -> list[tuple[str, Path]]:
    """The ``local:`` entries of packages.yml / dependencies.yml: (as written, resolved folder)."""
    import yaml

    entries: list[tuple[str, Path]] = []
    for name in ("packages.yml", "dependencies.yml"):
        path = root / name
        if not path.is_file():
            continue
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # dbt deps says what is wrong with it
        packages = loaded.get("packages") if isinstance(loaded, dict) else None
        for entry in packages if isinstance(packages, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("local"), str):
                try:
                    entries.append((entry["local"], (root / entry["local"]).resolve()))
                except (OSError, ValueError):  # a NUL byte, a symlink loop: dbt deps will say so
                    continue
    return entries


def vendored_copy(root: Path) -> Path | None:
    """The repo's own copy of featurehouse's dbt package, if packages.yml installs one from inside the repo."""
    root = root.resolve()
    for written, folder in local_packages(root):
        if not folder.is_relative_to(root) or folder == root:
            continue  # a checkout elsewhere (../../ in tests/dbt_project): not the repo's to keep
        if project_name(folder / "dbt_project.yml") == PACKAGE_NAME:
            return folder
        if not (folder / "dbt_project.yml").exists() and Path(written).name == PACKAGE_NAME:
            return folder  # named but not written yet (deleted, or a fresh clone without it)
    return None


def vendored_differences(root: Path) -> list[str]:
    """Files of the repo's copy of the macros that differ from the installed package's (added/changed/stale)."""
    folder = vendored_copy(root)
    if folder is None:
        return []
    if folder.exists() and not folder.is_dir():
        from featurehouse.errors import ConfigError

        raise ConfigError(
            f"packages.yml names {folder.relative_to(root.resolve()).as_posix()} for featurehouse's "
            "macros, but it is a file; remove it and run 'featurehouse compile' to write the folder"
        )
    wanted = package_files(shipped_package())
    present = {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in [folder / "dbt_project.yml", *sorted((folder / "macros").rglob("*.sql"))]
        if p.is_file()
    }
    prefix = folder.relative_to(root.resolve()).as_posix()
    names = sorted(set(wanted) | set(present))
    return [f"{prefix}/{name}" for name in names if wanted.get(name) != present.get(name)]


def write_vendored_copy(root: Path) -> list[str]:
    """Make the repo's copy of the macros equal to the installed package's; return what changed."""
    import os

    folder = vendored_copy(root)
    changed = vendored_differences(root)
    if folder is None or not changed:
        return []
    wanted = package_files(shipped_package())
    for name, data in wanted.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(data)
            temporary.replace(path)  # a concurrent dbt never reads half a macro
    for path in sorted((folder / "macros").rglob("*.sql")):
        if path.relative_to(folder).as_posix() not in wanted:
            path.unlink()  # a macro the installed featurehouse no longer has
    return changed


def check_version(root: Path) -> None:
    """One line when the macros dbt builds this repo with are not this featurehouse's version."""
    from featurehouse import __version__
    from featurehouse.errors import ConfigError

    root = Path(root).resolve()
    if project_name(root / "dbt_project.yml") == PACKAGE_NAME:
        places = [(root, "this checkout", "reinstall featurehouse from it (pip install -e .)")]
    else:
        places = [(root / "dbt_packages" / PACKAGE_NAME, "dbt_packages/featurehouse", "run 'dbt deps'")]
        vendored = vendored_copy(root)
        if vendored is not None:
            where = vendored.relative_to(root).as_posix()
            places.insert(0, (vendored, where, "run 'featurehouse compile' to update them, then 'dbt deps'"))
    for folder, where, fix in places:
        version = _top_level(folder / "dbt_project.yml", "version")
        if version is not None and version != __version__:
            raise ConfigError(
                f"the featurehouse dbt macros in {where} are version {version}, but the installed featurehouse "
                f"is {__version__}; {fix}, then 'dbt build'"
            )
