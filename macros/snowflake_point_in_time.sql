{#-
  Snowflake's point-in-time join (snowflake__point_in_time_join hands over here), with the
  semantics of point_in_time_join (docs/point-in-time.md, decision 0001 for full ties).

  Snowflake has a native ASOF JOIN: for each left row, the right row with the same ON keys
  whose MATCH_CONDITION column is the closest at or before; left rows without one keep NULLs.
  https://docs.snowflake.com/en/sql-reference/constructs/asof-join
  When several right rows share the matched time Snowflake returns any one of them, so the
  join alone would break the tie rules (greatest created time, then the full-tie rule). Each
  view's rows are therefore first cut to one per (keys, event time), the one the tie-break
  picks (QUALIFY row_number() ... = 1, the order latest_snapshot uses); the ASOF match on the
  event time is then unique, and it is the winner. The ttl is checked on the matched row: the
  newest row at or before t is the only candidate that can be within the ttl.

  Views with filter_by_created_timestamp take the default's visibility-ordered pass, and
  aggregation views window_aggregation, as on every engine; the ASOF views and those share
  the spine CTE. Decision 0029.
-#}
{% macro snowflake_point_in_time_join(spine, views, timestamp_column, spine_columns, order_column) -%}
{%- set row = order_column or '__fh_row' -%}
{%- set columns = spine_columns if spine_columns is not none else featurehouse._relation_columns(spine) -%}
{%- set native = [] -%}
{%- for view in views %}{% do native.append(not view.get('aggregations') and not view.filter_by_created) %}{% endfor -%}
{{ featurehouse._pit_spine_cte(spine, timestamp_column, order_column) }}
{%- for view in views %}
{%- set i = loop.index %}
{%- if not native[loop.index0] %}
{{ featurehouse._pit_view_ctes(view, i, row) }}
{%- else %}
{%- set keys = featurehouse._quoted_list(view.join_keys) %}
, __fh_f{{ i }} as (
    select {{ keys }}, event_timestamp as __fh_e
        {%- for feature in view.features %}, {{ adapter.quote(feature.name) }}{% endfor %}
    from {{ view.relation }}
    where event_timestamp is not null{% for key in view.join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
    qualify row_number() over (
        partition by {{ keys }}, event_timestamp
        order by created_timestamp desc nulls last
            {%- for feature in featurehouse._pit_tie_break(view) %}, {{ featurehouse._pit_order_expression(adapter.quote(feature.name), feature.dtype) }} desc nulls first{% endfor %}
    ) = 1
)
{%- endif %}
{%- endfor %}
select
    {%- for column in columns %}
    s.{{ adapter.quote(column) }},
    {%- endfor %}
    {%- for view in views %}
    {%- set outer_loop = loop %}
    {%- for feature in view.features %}
    {%- if native[outer_loop.index0] %}
    case when s.__fh_ts is not null{{ featurehouse._pit_ttl_condition('f' ~ outer_loop.index ~ '.__fh_e', 's.__fh_ts', view.ttl_seconds) }}
         then f{{ outer_loop.index }}.{{ adapter.quote(feature.name) }} end as {{ adapter.quote(view.prefix ~ feature.name) }}
    {%- else %}
    r{{ outer_loop.index }}.{{ adapter.quote(feature.name) }} as {{ adapter.quote(view.prefix ~ feature.name) }}
    {%- endif %}{{ "," if not (outer_loop.last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
from __fh_spine as s
{%- for view in views %}
{%- set i = loop.index %}
{%- if native[loop.index0] %}
asof join __fh_f{{ i }} as f{{ i }}
    match_condition (s.__fh_ts >= f{{ i }}.__fh_e)
    on {% for key in view.join_keys %}f{{ i }}.{{ adapter.quote(key) }} = s.{{ adapter.quote(key) }}{{ " and " if not loop.last }}{% endfor %}
{%- else %}
left join __fh_r{{ i }} as r{{ i }} on r{{ i }}.__fh_row = s.{{ row }}
{%- endif %}
{%- endfor %}
order by s.{{ row }}
{%- endmacro %}
