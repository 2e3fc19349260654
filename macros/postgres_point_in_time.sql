{#-
  Postgres's point-in-time join picks, per feature view, one of two plans that return the
  same rows (docs/decisions/0016-postgres-training-set-plans.md):

  - lateral: for each spine row, an index probe into the view's history,
      LEFT JOIN LATERAL (... WHERE keys = spine keys AND event_timestamp <= t
                         ORDER BY event_timestamp DESC, created_timestamp DESC NULLS LAST,
                                  features DESC NULLS FIRST LIMIT 1)
    The ORDER BY is the full-tie rule of docs/decisions/0001 read backwards: the greatest
    (event, created NULLS oldest, features NULLS greatest, strings COLLATE "C") comes first,
    exactly the row the sort-based pass picks. A backward scan of a btree index led by
    (join keys, event_timestamp) finds it reading one row or one tie group per spine row
    (Incremental Sort on the rest of the key); without such an index every probe scans.
  - sort: the sort-based union + fill-forward of default__point_in_time_join, one sort of
    (spine ∪ history) per key, no index needed.

  Choice (_pg_pit_plan), measured on Postgres 15 with the history indexed (decision 0016):
  the probe was 2.2x faster at 100k spine x 1M history rows, even at 1M x 1M, and 1.5x
  slower at 1M x 100k; the sort needs no index. So: `lateral` when the view's table has a
  valid btree index led by its join keys and event_timestamp (the feature view models get
  one: compiler, `indexes` config) and the spine is not known to hold more rows than the
  history (pg_class.reltuples, when the spine is a table dbt built or analysed; the SDK's
  spine is uploaded after rendering, so its size is unknown there); `sort` otherwise.
  The dbt var `featurehouse_pg_plan` (auto | lateral | sort) forces a plan for every view.
-#}
{% macro postgres_point_in_time_join(spine, views, timestamp_column, spine_columns, order_column) -%}
{%- set probes = {} -%}
{%- for view in views -%}
  {%- if featurehouse._pg_pit_plan(view, spine) == 'lateral' -%}
    {%- do probes.update({loop.index: featurehouse._pg_pit_probe(view)}) -%}
  {%- endif -%}
{%- endfor -%}
{{ return(featurehouse._pit_sorted_join(spine, views, timestamp_column, spine_columns, order_column, probes)) }}
{%- endmacro %}


{#- The winning row of one view for the spine row `s`, NULLs when there is none. Candidates
    are the rules of point_in_time_join's docstring written as a WHERE: a NULL key or time
    matches nothing, both ttl bounds inclusive, a NULL created time passes the filter. -#}
{% macro _pg_pit_probe(view) -%}
    select
        {%- for feature in view.features %}
        f.{{ adapter.quote(feature.name) }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ view.relation }} as f
    where {% for key in view.join_keys %}f.{{ adapter.quote(key) }} = s.{{ adapter.quote(key) }} and {% endfor -%}
          f.event_timestamp <= s.__fh_ts
          {%- if view.ttl_seconds and view.ttl_seconds > 0 %}
      and f.event_timestamp >= {{ dbt.dateadd('second', -1 * view.ttl_seconds, 's.__fh_ts') }}
          {%- endif %}
          {%- if view.filter_by_created %}
      and (f.created_timestamp <= s.__fh_ts or f.created_timestamp is null)
          {%- endif %}
    order by f.event_timestamp desc, f.created_timestamp desc nulls last
        {%- for feature in featurehouse._pit_tie_break(view) %},
        {{ featurehouse._pit_order_expression('f.' ~ adapter.quote(feature.name), feature.dtype) }} desc nulls first
        {%- endfor %}
    limit 1
{%- endmacro %}


{#- 'lateral', 'sort' or 'aggregation' for one view (see the top of this file). -#}
{% macro _pg_pit_plan(view, spine) -%}
{%- set forced = var('featurehouse_pg_plan', 'auto') -%}
{%- if forced not in ('auto', 'lateral', 'sort') -%}
  {%- do exceptions.raise_compiler_error(
      "dbt var featurehouse_pg_plan is '" ~ forced ~ "'; expected auto, lateral or sort") -%}
{%- endif -%}
{%- if view.get('aggregations') -%}{{ return('aggregation') }}{%- endif -%}
{%- if forced != 'auto' -%}{{ return(forced) }}{%- endif -%}
{#- parsing renders without a database: any plan will do, the SQL is not run -#}
{%- if not execute or view.relation is string -%}{{ return('sort') }}{%- endif -%}
{%- set history = featurehouse._pg_indexed_rows(view.relation, view.join_keys) -%}
{%- if history is none -%}{{ return('sort') }}{%- endif -%}
{%- set spine_rows = featurehouse._pg_estimated_rows(spine) -%}
{%- if spine_rows is not none and spine_rows > history -%}{{ return('sort') }}{%- endif -%}
{{ return('lateral') }}
{%- endmacro %}


{#- The estimated rows of `relation` when it has a valid btree index whose leading columns are
    `join_keys` then event_timestamp, else none. CREATE INDEX sets reltuples, so a feature view
    model built with its index has an estimate; a never-analysed table (-1) counts as 0. -#}
{% macro _pg_indexed_rows(relation, join_keys) -%}
{%- set columns = join_keys + ['event_timestamp'] -%}
{%- set query -%}
    select greatest(c.reltuples, 0)::float8
    from pg_catalog.pg_index as i
    join pg_catalog.pg_class as c on c.oid = i.indrelid
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    join pg_catalog.pg_class as ic on ic.oid = i.indexrelid
    join pg_catalog.pg_am as am on am.oid = ic.relam
    where n.nspname = {{ featurehouse._pg_literal(relation.schema) }}
      and c.relname = {{ featurehouse._pg_literal(relation.identifier) }}
      and i.indisvalid and am.amname = 'btree' and i.indpred is null
      and i.indnkeyatts >= {{ columns | length }}
      {%- for column in columns %}
      and pg_catalog.pg_get_indexdef(i.indexrelid, {{ loop.index }}, false) = quote_ident({{ featurehouse._pg_literal(column) }})
      {%- endfor %}
    limit 1
{%- endset -%}
{%- set found = run_query(query) -%}
{%- if found is none or found.rows | length == 0 -%}{{ return(none) }}{%- endif -%}
{{ return(found.rows[0][0]) }}
{%- endmacro %}


{#- pg_class.reltuples of the spine, none when it is unknown: never analysed, or not a table
    (a subquery's text, or the SDK's placeholder for a spine uploaded after rendering). A
    `table:` spine arrives as its quoted name, not a Relation; only text that is a plain
    (qualified) name reaches to_regclass, which raises on anything else. -#}
{% macro _pg_estimated_rows(spine) -%}
{%- set name = spine if spine is string else spine.include(database=false) | string -%}
{%- set query -%}
    select c.reltuples::float8
    from pg_catalog.pg_class as c
    where c.oid = (case when {{ featurehouse._pg_literal(name) }} ~ '^\s*("([^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)(\s*\.\s*("([^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)){0,2}\s*$'
                        then to_regclass({{ featurehouse._pg_literal(name) }}) end)
      and c.reltuples >= 0
{%- endset -%}
{%- set found = run_query(query) -%}
{%- if found is none or found.rows | length == 0 -%}{{ return(none) }}{%- endif -%}
{{ return(found.rows[0][0]) }}
{%- endmacro %}


{% macro _pg_literal(text) -%}
  '{{ (text or '') | replace("'", "''") }}'
{%- endmacro %}

