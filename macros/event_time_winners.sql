{#-
  event_time_winners: the post-hook of a feature view model (fv_<view>) that writes, beside
  it, the rows a point-in-time join can return: for each (join keys, event_timestamp), the
  one row the tie-break picks (greatest created_timestamp, NULL oldest, then the tuple of
  all the view's features, the full-tie rule of docs/decisions/0001-full-tie-rule.md).

  Arguments
    relation   the feature view model (`this` in the hook)
    join_keys  list of key column names
    features   every feature of the view, in schema order (the full-tie rule compares them all)

  Returns the SQL the hook runs; empty where the point-in-time join does not read it.

  Why: with (keys, event_timestamp) unique, the join needs no tie-break at query time, and
  DuckDB's ASOF join runs on the plain timestamp instead of a struct key (event, created,
  features): 2-5x faster per view (docs/decisions/0032-event-time-winners.md). The table is
  written by the model's own hook, so every build of fv_<view> (`dbt build`, `dbt run -s
  fv_<view>`) rewrites it in the same step: it cannot be older than the model.
  Rows with a NULL key or a NULL event time can never match and are left out.
-#}
{% macro event_time_winners(relation, join_keys, features) -%}
  {{ return(adapter.dispatch('event_time_winners', 'featurehouse')(relation, join_keys, features)) }}
{%- endmacro %}


{#- Only DuckDB's join reads it (duckdb__point_in_time_join); elsewhere nothing is written. -#}
{% macro default__event_time_winners(relation, join_keys, features) -%}
{%- endmacro %}


{#- max() over the same struct key the ASOF join compares (featurehouse._duckdb_pit_key):
    one definition of the tie-break for both, so they cannot drift apart. Ordered by key and
    time: the join over a sorted table ran in 0.43 s against 0.59 s unsorted, for 0.1-0.4 s
    more here (10M rows; decision 0032).
    https://duckdb.org/docs/stable/sql/data_types/struct#comparison-and-ordering -#}
{% macro duckdb__event_time_winners(relation, join_keys, features) -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
create or replace table {{ featurehouse._event_time_winners_relation(relation) }} as
select {{ keys }}, event_timestamp
    {%- for feature in features %},
    __fh_key.v.{{ adapter.quote(feature) }} as {{ adapter.quote(feature) }}
    {%- endfor %}
from (
    select {{ keys }}, event_timestamp, max({{ featurehouse._duckdb_pit_key(features) }}) as __fh_key
    from {{ relation }}
    where event_timestamp is not null{% for key in join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
    group by {{ keys }}, event_timestamp
) as __fh_winners
order by {{ keys }}, event_timestamp
{%- endmacro %}


{#- The relation event_time_winners writes for `relation`: the same schema, `<name>__winners`
    (the suffix is featurehouse.spec.repo.WINNERS_SUFFIX on the Python side). -#}
{% macro _event_time_winners_relation(relation) -%}
  {{ return(relation.incorporate(path={'identifier': relation.identifier ~ '__winners'})) }}
{%- endmacro %}
