"""The example feature repo's data, and ``featurehouse init`` that scaffolds a repo from it.

Data is generated, never committed: hourly driver statistics and daily customer profiles
for the last week, with timestamps relative to now, plus a labels spine. It includes
what real pipelines produce: late corrections (same event time, newer created time) and
drivers without recent rows (their features come back NULL once the ttl has passed).
"""

from __future__ import annotations

import csv
import random
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from featurehouse.errors import ConfigError

DRIVERS = list(range(1001, 1011))
CUSTOMERS = list(range(2001, 2011))
DAYS = 7


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def write_example_data(seeds_dir: Path, seed: int = 7, now: datetime | None = None) -> dict[str, int]:
    """Write the seed CSVs (driver stats, customer profiles, labels, documents); return row counts."""
    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    now = now.replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=DAYS)
    seeds_dir.mkdir(parents=True, exist_ok=True)
    # the example's DuckDB warehouse and SQLite online store live in data/ (dbt won't create it)
    (seeds_dir.parent / "data").mkdir(exist_ok=True)
    counts: dict[str, int] = {}

    rows = []
    for driver in DRIVERS:
        # driver 1010 stopped driving two days ago: its features expire (ttl 1d)
        last = now - timedelta(days=2) if driver == 1010 else now
        hour = start
        while hour <= last:
            created = hour + timedelta(minutes=rng.randint(1, 20))
            rows.append(
                [driver, _fmt(hour), _fmt(created), round(rng.random(), 4), round(rng.random(), 4), rng.randint(5, 40)]
            )
            if rng.random() < 0.03:  # a late correction of the same hour
                rows.append(
                    [
                        driver,
                        _fmt(hour),
                        _fmt(created + timedelta(hours=3)),
                        round(rng.random(), 4),
                        round(rng.random(), 4),
                        rng.randint(5, 40),
                    ]
                )
            hour += timedelta(hours=1)
    counts["raw_driver_stats.csv"] = _write(
        seeds_dir / "raw_driver_stats.csv",
        ["driver_id", "event_timestamp", "created", "conv_rate", "acc_rate", "avg_daily_trips"],
        rows,
    )

    rows = []
    for customer in CUSTOMERS:
        for day in range(DAYS + 1):
            moment = start + timedelta(days=day)
            rows.append(
                [
                    customer,
                    _fmt(moment),
                    _fmt(moment + timedelta(minutes=5)),
                    round(rng.uniform(0, 500), 2),
                    round(rng.uniform(1, 3), 2),
                    10 * day + rng.randint(0, 9),
                ]
            )
    counts["raw_customer_profile.csv"] = _write(
        seeds_dir / "raw_customer_profile.csv",
        ["customer_id", "event_timestamp", "created", "current_balance", "avg_passenger_count", "lifetime_trip_count"],
        rows,
    )

    rows = []
    for request in range(1000):
        moment = start + timedelta(seconds=rng.randint(0, DAYS * 86400))
        rows.append([request, rng.choice(DRIVERS), rng.choice(CUSTOMERS), _fmt(moment), rng.randint(0, 1)])
    counts["driver_labels.csv"] = _write(
        seeds_dir / "driver_labels.csv",
        ["request_id", "driver_id", "customer_id", "event_timestamp", "trip_completed"],
        rows,
    )

    # the document corpus of the RAG example, with its hashed bag-of-words embeddings
    from featurehouse.cli import example_documents

    counts["raw_documents.csv"] = _write(
        seeds_dir / "raw_documents.csv", example_documents.HEADER, example_documents.corpus_rows(rng, start, now)
    )
    return {str(seeds_dir / name): count for name, count in counts.items()}


def _write(path: Path, header: list[str], rows: list[list[object]]) -> int:
    temporary = path.with_suffix(".csv.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    temporary.replace(path)
    return len(rows)


# ---- featurehouse init ------------------------------------------------------------------------
def sync_scripts() -> Path:
    """The cron and systemd files (sync/run-sync.sh and its schedules) a new repo gets."""
    here = Path(__file__).resolve().parent.parent
    for folder in (here / "scaffold" / "sync", here.parent / "sync"):
        if (folder / "run-sync.sh").is_file():
            return folder
    raise ConfigError(
        f"the sync scripts are missing from this install at {here}; "
        "reinstall it: pip install --force-reinstall featurehouse"
    )


def example_specs() -> Path:
    """The example's feature_specs/ folder: shipped in the wheel, or the source checkout's own."""
    here = Path(__file__).resolve().parent.parent
    for folder in (here / "example_specs", here.parent / "feature_specs"):
        if (folder / "drivers.yml").is_file():
            return folder
    raise ConfigError(
        f"the example feature specs are missing from this install at {here}; "
        "reinstall it: pip install --force-reinstall featurehouse"
    )


def example_models() -> Path:
    """The example's own dbt models (models/example/: documents_embedded.sql) a new repo gets."""
    here = Path(__file__).resolve().parent.parent
    for folder in (here / "scaffold" / "models" / "example", here.parent / "models" / "example"):
        if (folder / "documents_embedded.sql").is_file():
            return folder
    raise ConfigError(
        f"the example's dbt models are missing from this install at {here}; "
        "reinstall it: pip install --force-reinstall featurehouse"
    )


_DBT_PROJECT = """\
name: {name}
version: "0.1.0"
config-version: 2
profile: {name}

model-paths: ["models"]
seed-paths: ["seeds"]
target-path: target
clean-targets: [target, dbt_packages]

seeds:
  {name}:
    raw_driver_stats:
      +column_types: {{event_timestamp: timestamp, created: timestamp}}
    raw_customer_profile:
      +column_types: {{event_timestamp: timestamp, created: timestamp}}
    driver_labels:
      +column_types: {{event_timestamp: timestamp}}
    raw_documents:
      +column_types: {{event_timestamp: timestamp, created: timestamp, embedding_text: text}}
"""

_PROFILES = """\
{name}:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: data/warehouse.duckdb
      threads: 2
"""

_PACKAGES = """\
packages:
  # featurehouse's macros, copied into the repo (commit them); `featurehouse compile` keeps them
  # equal to the installed featurehouse and `compile --check` fails when they are not.
  - local: {package}
"""

_CONFIG = """\
project: {name}
specs: feature_specs
online_store:
  type: sqlite
  path: data/online.db
"""

_GITIGNORE = "target/\ndbt_packages/\nlogs/\ndata/\nseeds/*.csv\n.venv/\n"


def init_repo(directory: Path, name: str | None = None) -> Path:
    """Scaffold a feature repo in ``directory`` that compiles and `dbt build`s out of the box."""
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty; featurehouse init only writes into a new or empty folder")
    project = name or re.sub(r"[^A-Za-z0-9_]", "_", directory.name).lstrip("0123456789_") or "feature_repo"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", project):
        raise ConfigError(f"--name: expected a plain identifier (letters, digits and _), got {project!r}")
    from featurehouse.dbt.package_macros import VENDOR_DIR, shipped_package, write_vendored_copy

    shipped_package()  # before writing anything: a broken install must not leave half a repo
    specs, scripts, models = example_specs(), sync_scripts(), example_models()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dbt_project.yml").write_text(_DBT_PROJECT.format(name=project))
    (directory / "profiles.yml").write_text(_PROFILES.format(name=project))
    (directory / "packages.yml").write_text(_PACKAGES.format(package=VENDOR_DIR))
    write_vendored_copy(directory)
    (directory / "featurehouse.yml").write_text(_CONFIG.format(name=project))
    (directory / ".gitignore").write_text(_GITIGNORE)
    shutil.copytree(specs, directory / "feature_specs")
    shutil.copytree(scripts, directory / "sync")
    shutil.copytree(models, directory / "models" / "example")  # documents_embedded, which documents.yml reads
    (directory / "sync" / "run-sync.sh").chmod(0o755)  # a wheel does not keep the executable bit
    write_example_data(directory / "seeds")

    from featurehouse.compile import compiler
    from featurehouse.spec.repo import load_repo

    repo = load_repo(directory)
    compiler.write(directory / repo.config.models_dir, compiler.compile_repo(repo, "duckdb"))
    return directory
