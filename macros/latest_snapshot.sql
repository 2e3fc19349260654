{#-
  latest_snapshot: per entity, the row the point-in-time rule picks at one moment (the
  run's start by default). This is what `featurehouse sync` copies to the online store,
  so it must agree with point_in_time_join for a spine of (entity, as_of) rows. The
  online_<view> models call it through incremental_latest_snapshot (full builds) and use
  its tie-break for their incremental builds.

  Arguments
    relation           a normalised feature-view relation (fv_<view>): join keys,
                       event_timestamp, created_timestamp (naive UTC), features
    join_keys          list of key column names
    features           list of {name, dtype}, in schema order (the full-tie rule uses it)
    ttl_seconds        0 = unlimited; otherwise rows older than as_of - ttl are left out
    filter_by_created  also require created_timestamp <= as_of (a NULL created time
                       counts as created at the event time)
    as_of              a SQL timestamp expression (naive UTC); default: snapshot_as_of(),
                       the dbt var featurehouse_as_of when set, otherwise when the dbt
                       invocation started (run_started_at, UTC): one instant for every model

  Tie-break (the same as point_in_time_join): the greatest event_timestamp; then the
  greatest created_timestamp, NULL counting as oldest; then the greatest feature values
  in schema order, NULL counting as greater than any value (strings compared byte-wise).
-#}
{% macro latest_snapshot(relation, join_keys, features, ttl_seconds=0, filter_by_created=false, as_of=none) -%}
  {{ return(adapter.dispatch('latest_snapshot', 'featurehouse')(relation, join_keys, features, ttl_seconds, filter_by_created, as_of)) }}
{%- endmacro %}


{#- One row_number() per key, newest first; runs on any warehouse with window functions. -#}
{% macro default__latest_snapshot(relation, join_keys, features, ttl_seconds, filter_by_created, as_of) -%}
{%- set moment = as_of if as_of is not none else featurehouse.snapshot_as_of() -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
select
    {{ keys }},
    event_timestamp,
    created_timestamp
    {%- for feature in features %},
    {{ adapter.quote(feature.name) }}
    {%- endfor %}
from (
    select
        *,
        row_number() over (
            partition by {{ keys }}
            order by event_timestamp desc, created_timestamp desc nulls last
                {%- for feature in features %}, {{ featurehouse._pit_order_expression(adapter.quote(feature.name), feature.dtype) }} desc nulls first{% endfor %}
        ) as __fh_rank
    from {{ relation }}
    where {{ featurehouse._snapshot_eligible(join_keys, moment, ttl_seconds, filter_by_created) }}
) as __fh_ranked
where __fh_rank = 1
{%- endmacro %}


{#- The rows the point-in-time rule may pick at `moment`: keys and event time present, event
    time at or before it and within the ttl, and created by then when filter_by_created. -#}
{% macro _snapshot_eligible(join_keys, moment, ttl_seconds, filter_by_created) -%}
event_timestamp is not null
        {%- for key in join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
        and event_timestamp <= {{ moment }}
        {{- featurehouse._pit_ttl_condition('event_timestamp', moment, ttl_seconds) }}
        {%- if filter_by_created %} and (created_timestamp is null or created_timestamp <= {{ moment }}){% endif %}
{%- endmacro %}
