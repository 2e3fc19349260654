"""Build step: put featurehouse's dbt package and the example specs inside the wheel.

The dbt package (dbt_project.yml, macros/) and the example's feature_specs/ live at the
repository root, where dbt and the example repo expect them; a wheel carries only what is
under featurehouse/, so the build copies them to featurehouse/dbt_package/ and
featurehouse/example_specs/ (docs/decisions/0013-how-a-repo-finds-the-macros.md), and the
root's sync/ (cron and systemd files) to featurehouse/scaffold/sync/ and the example's own dbt
models (models/example/) to featurehouse/scaffold/models/example/ for `featurehouse init`. Everything
else is in pyproject.toml.
"""

import atexit
import importlib.util
import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _package_macros():
    # the same code that featurehouse uses to compare a repo's copy, without importing featurehouse
    spec = importlib.util.spec_from_file_location("_fh_package_macros", ROOT / "featurehouse" / "dbt" / "package_macros.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithDbtPackage(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's root directly
        target = Path(self.build_lib) / "featurehouse"
        files = {f"dbt_package/{name}": data for name, data in _package_macros().package_files(ROOT).items()}
        for spec in sorted((ROOT / "feature_specs").glob("*.yml")):
            files[f"example_specs/{spec.name}"] = spec.read_bytes()
        for path in sorted((ROOT / "sync").iterdir()):  # cron and systemd files that init writes
            if path.is_file():
                files[f"scaffold/sync/{path.name}"] = path.read_bytes()
        for path in sorted((ROOT / "models" / "example").glob("*.sql")):  # the example's own dbt models
            files[f"scaffold/models/example/{path.name}"] = path.read_bytes()
        for name, data in files.items():
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


# setuptools builds in ./build by default, which `pip wheel .` then leaves in the checkout
BUILD_BASE = tempfile.mkdtemp(prefix="featurehouse-build-")
atexit.register(shutil.rmtree, BUILD_BASE, ignore_errors=True)

setup(cmdclass={"build_py": BuildWithDbtPackage}, options={"build": {"build_base": BUILD_BASE}})
