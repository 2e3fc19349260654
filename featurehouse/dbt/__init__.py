"""The dbt project around a feature repo: profiles.yml targets, the macros featurehouse
ships, dbt's manifest, rendering macros to SQL. The bottom layer, above errors."""
