{#-
  incremental_latest_snapshot: latest_snapshot as a dbt incremental model. The first build
  (and every --full-refresh) is latest_snapshot itself; a later build rewrites only the
  entities whose pick changed (config: materialized='incremental',
  incremental_strategy='delete+insert', unique_key=the join keys; with a ttl, the post_hook
  expire_latest_snapshot drops the rows that aged out). docs/decisions/0006.

  Arguments: as for latest_snapshot (relation, join_keys, features, ttl_seconds,
  filter_by_created, as_of).

  Columns: those of latest_snapshot, then three for bookkeeping (sync reads only the
  ones it needs):
    snapshot_as_of       the as-of time of the build that last wrote the row; every build
                         writes at least one row (an unchanged one when nothing changed), so
                         the newest value is the as-of time W of the last build
    snapshot_built_at    when the dbt invocation that last wrote the row started (UTC): the
                         watermark by which `featurehouse sync` fetches only rows written
                         since its last run (the as-of time cannot serve: it can be pinned)
    snapshot_definition  a hash of the arguments above: a build with other arguments stops
                         and asks for --full-refresh instead of mixing two definitions

  An incremental build as of A >= W: the table holds the pick as of W for every entity
  (those that aged out deleted). A row can be picked at A but not at W only if its event
  time or its created time is later than W, or if it reached fv_<view> after the build
  as of W read it. The dbt var featurehouse_snapshot_lookback L (a duration: 90s, 30m,
  12h, 1d, 2w or seconds; default 1d) is how late a row may land after the later of its
  two times: the candidates are the rows eligible at A with event_timestamp > W - L or
  created_timestamp > W - L; a row that lands later than that is seen only by
  --full-refresh. Each entity's pick is the best of its candidates and its current row (if
  still within the ttl at A), by the tie-break of latest_snapshot; the current row wins a
  full tie, so a candidate seen before is not rewritten. An as-of time before W stops the
  build (the rows picked since cannot be taken back).
-#}
{% macro incremental_latest_snapshot(relation, join_keys, features, ttl_seconds=0, filter_by_created=false, as_of=none) -%}
  {{ return(adapter.dispatch('incremental_latest_snapshot', 'featurehouse')(relation, join_keys, features, ttl_seconds, filter_by_created, as_of)) }}
{%- endmacro %}


{#- Plain SQL (window functions, EXISTS, LIMIT); the string collation of the tie-break is
    dispatched inside _pit_order_expression. Tested on DuckDB and Postgres. -#}
{% macro default__incremental_latest_snapshot(relation, join_keys, features, ttl_seconds, filter_by_created, as_of) -%}
{%- set moment = as_of if as_of is not none else featurehouse.snapshot_as_of() -%}
{%- set definition = featurehouse._snapshot_definition(join_keys, features, ttl_seconds, filter_by_created) -%}
{%- set bookkeeping -%}
    {{ moment }} as snapshot_as_of,
    cast('{{ run_started_at.astimezone(modules.pytz.utc).strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as snapshot_built_at,
    cast('{{ definition }}' as {{ dbt.type_string() }}) as snapshot_definition
{%- endset -%}
{%- if not is_incremental() -%}
select
    __fh_snapshot.*,
    {{ bookkeeping }}
from (
{{ featurehouse.latest_snapshot(relation, join_keys, features, ttl_seconds, filter_by_created, moment) }}
) as __fh_snapshot
{%- else -%}
{%- set last = featurehouse._snapshot_last_as_of(moment, definition, join_keys, features) -%}
{%- if last is not none -%}
  {%- set since = last - modules.datetime.timedelta(seconds=featurehouse._snapshot_lookback_seconds()) -%}
  {%- set since = "cast('" ~ since.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as " ~ dbt.type_timestamp() ~ ")" -%}
{%- endif -%}
{%- set keys = featurehouse._quoted_list(join_keys) -%}
{%- set columns -%}
{{ keys }}, event_timestamp, created_timestamp{% for feature in features %}, {{ adapter.quote(feature.name) }}{% endfor %}
{%- endset -%}
{#- rows that may be picked now but were not at the last build #}
with __fh_candidates as (
    select {{ columns }}
    from {{ relation }}
    where {{ featurehouse._snapshot_eligible(join_keys, moment, ttl_seconds, filter_by_created) }}
        {%- if last is not none %}
        and (event_timestamp > {{ since }} or created_timestamp > {{ since }})
        {%- endif %}
)
{#- the current rows of those entities, unless they aged out #}
, __fh_current as (
    select {{ columns }}
    from {{ this }} as __fh_this
    where exists (
        select 1 from __fh_candidates as c
        where {% for key in join_keys %}c.{{ adapter.quote(key) }} = __fh_this.{{ adapter.quote(key) }}{{ " and " if not loop.last }}{% endfor %}
    )
    {{- featurehouse._pit_ttl_condition('event_timestamp', moment, ttl_seconds) }}
)
, __fh_ranked as (
    select
        *,
        row_number() over (
            partition by {{ keys }}
            order by event_timestamp desc, created_timestamp desc nulls last
                {%- for feature in features %}, {{ featurehouse._pit_order_expression(adapter.quote(feature.name), feature.dtype) }} desc nulls first{% endfor %},
                __fh_is_new
        ) as __fh_rank
    from (
        select *, 0 as __fh_is_new from __fh_current
        union all
        select *, 1 as __fh_is_new from __fh_candidates
    ) as __fh_both
)
, __fh_changed as (
    select {{ columns }}
    from __fh_ranked
    where __fh_rank = 1 and __fh_is_new = 1
)
select {{ columns }},
    {{ bookkeeping }}
from __fh_changed
union all
{#- nothing changed: rewrite one unchanged row, so that max(snapshot_as_of) records this build #}
select {{ columns }},
    {{ bookkeeping }}
from (
    select {{ columns }}
    from {{ this }}
    where 1 = 1{{ featurehouse._pit_ttl_condition('event_timestamp', moment, ttl_seconds) }}
    limit 1
) as __fh_heartbeat
where not exists (select 1 from __fh_changed)
{%- endif -%}
{%- endmacro %}


{#- The fingerprint of a snapshot's definition, stored in every row (snapshot_definition). -#}
{% macro _snapshot_definition(join_keys, features, ttl_seconds, filter_by_created) -%}
  {#- 1: the format of the incremental build; bump it when a macro change needs a rebuild -#}
  {%- set text = tojson([1, join_keys, features, ttl_seconds, filter_by_created], sort_keys=true) -%}
  {{ return(local_md5(text)[:16]) }}
{%- endmacro %}


{#- The dbt var featurehouse_snapshot_lookback in seconds: a duration as in the specs, or seconds. -#}
{% macro _snapshot_lookback_seconds() -%}
  {%- set text = var('featurehouse_snapshot_lookback', '1d') | string | trim -%}
  {%- set match = modules.re.match('^([0-9]+)([smhdw]?)$', text) -%}
  {%- if not match -%}
    {{ exceptions.raise_compiler_error(
        "var featurehouse_snapshot_lookback: expected a duration such as 90s, 30m, 12h, 1d or 2w (or seconds), got '"
        ~ text ~ "'") }}
  {%- endif -%}
  {{ return((match.group(1) | int) * {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[match.group(2)]) }}
{%- endmacro %}


{#- The as-of time of the last build as a datetime (none when the table is empty), after
    checking that the table has this definition's columns and fingerprint and that the
    build does not go back in time. Runs a query when dbt executes the model. -#}
{% macro _snapshot_last_as_of(moment, definition, join_keys, features) -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set rebuild = "dbt build --full-refresh --select " ~ this.identifier -%}
  {%- set expected = join_keys + ['event_timestamp', 'created_timestamp'] + (features | map(attribute='name') | list) + ['snapshot_as_of', 'snapshot_built_at', 'snapshot_definition'] -%}
  {%- set found = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
  {%- if found != (expected | map('lower') | list) -%}
    {{ exceptions.raise_compiler_error(
        this.identifier ~ " has the columns [" ~ found | join(', ') ~ "], not those of its feature view's current definition [" ~ expected | join(', ')
        ~ "] (the view changed, or an earlier featurehouse built it): rebuild it once with `" ~ rebuild ~ "`") }}
  {%- endif -%}
  {%- set state = run_query(
      "select max(snapshot_as_of), " ~ moment ~ ", min(snapshot_definition), max(snapshot_definition), "
      ~ "count(*) from " ~ this) -%}
  {%- set last, now, lowest, highest, rows = state.rows[0] -%}
  {%- if rows == 0 -%}{{ return(none) }}{%- endif -%}
  {%- if lowest != definition or highest != definition -%}
    {{ exceptions.raise_compiler_error(
        this.identifier ~ " was built from another definition of its feature view (ttl, "
        ~ "filter_by_created_timestamp, features or join keys changed): rebuild it once with `" ~ rebuild ~ "`") }}
  {%- endif -%}
  {%- if last > now -%}
    {{ exceptions.raise_compiler_error(
        this.identifier ~ " was last built as of " ~ last ~ " UTC, later than this build's as-of time "
        ~ now ~ " UTC (var featurehouse_as_of); an incremental build cannot go back in time: add --full-refresh (`"
        ~ rebuild ~ "`)") }}
  {%- endif -%}
  {{ return(last) }}
{%- endmacro %}
