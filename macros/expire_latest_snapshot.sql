{#-
  expire_latest_snapshot: the post_hook of an incremental latest snapshot with a ttl
  (incremental_latest_snapshot). Deletes the rows older than the as-of time minus the ttl,
  the entities a full build leaves out; an entity with a newer row in reach got it in the
  same build. A no-op without a ttl.

  Arguments
    relation      the snapshot table ({{ this }} in the hook)
    ttl_seconds   the view's ttl; 0 = unlimited
    as_of         a SQL timestamp expression (naive UTC); default: snapshot_as_of(), the
                  instant the model itself was built as of
-#}
{% macro expire_latest_snapshot(relation, ttl_seconds, as_of=none) -%}
  {{ return(adapter.dispatch('expire_latest_snapshot', 'featurehouse')(relation, ttl_seconds, as_of)) }}
{%- endmacro %}


{% macro default__expire_latest_snapshot(relation, ttl_seconds, as_of) -%}
{%- if ttl_seconds and ttl_seconds > 0 -%}
delete from {{ relation }}
where event_timestamp < {{ dbt.dateadd('second', -1 * ttl_seconds, as_of if as_of is not none else featurehouse.snapshot_as_of()) }}
{%- endif -%}
{%- endmacro %}
