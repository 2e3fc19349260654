"""Compile: specs to dbt models (sqlglot); compile_repo lists its generators explicitly.
Imports plan and below."""
