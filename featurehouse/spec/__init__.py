"""Specs: load featurehouse.yml and the YAML specs, validate them (against the data files
too), report errors by file and line. Imports dbt and errors (docs/architecture.md)."""
