{#-
  point_in_time_retrieval: for every spine row, the top-k documents of a vector view nearest
  to the row's query vector, as the documents were at the row's time.

  Arguments
    spine             a relation or SQL text naming one; its rows are kept, in order
    view              a dict: name, relation, join_keys (list), key_dtypes (list, same order),
                      features (requested, list of {name, dtype}), all_features (every
                      feature of the view in schema order, for the full-tie rule),
                      vector ({name, dimensions, metric}), ttl_seconds (0 = unlimited),
                      filter_by_created (bool), prefix ('' or 'view__')
    query_column      the spine's query vector column (a list of floats)
    top_k             documents per spine row (1..1000)
    timestamp_column  the spine's timestamp column (naive = UTC, zoned = converted to UTC)
    spine_columns     the spine's columns, in order; looked up from the relation when omitted
    order_column      a unique column giving the spine's order; row_number() over () without
    rank_column, distance_column   the names of the two added columns
    use_pgvector      Postgres only: true = pgvector's operators, false = the portable SQL,
                      none = look the extension up while rendering

  Semantics (docs/vector-search.md, "Offline retrieval"; docs/decisions/0020):
  - the version of a document (join keys K) at time t is the point-in-time winner among its
    rows with event_timestamp <= t (and created_timestamp <= t with filter_by_created),
    within ttl (a row exactly ttl old counts), with the tie rule of point_in_time_join
    (greatest event, then created with NULL oldest, then the greatest tuple of all features);
  - a document whose version at t has a NULL vector (deleted), a vector of another length
    or, for cosine, a zero vector is not returned;
  - distance: cosine 1 - a.b/(|a||b|), l2 Euclidean, inner_product -a.b; hits are ranked by
    distance, then join keys ascending (strings byte-wise), and the first top_k are kept;
  - one output row per hit: the spine row's columns, rank (1..k), the keys, the requested
    features and the distance. A spine row without hits (NULL time or query, nothing live)
    comes back once with NULL rank, keys, features and distance: no spine row is dropped.
-#}
{% macro point_in_time_retrieval(spine, view, query_column, top_k, timestamp_column='event_timestamp', spine_columns=none, order_column=none, rank_column='rank', distance_column='distance', use_pgvector=none) -%}
  {{ return(adapter.dispatch('point_in_time_retrieval', 'featurehouse')(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, use_pgvector)) }}
{%- endmacro %}


{#- Portable SQL: distances from unnest ... with ordinality, summed per pair. -#}
{% macro default__point_in_time_retrieval(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, use_pgvector) -%}
  {{ return(featurehouse._pitr_query(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, 'portable')) }}
{%- endmacro %}


{#- Fixed-size FLOAT[n] arrays and DuckDB's array_cosine_distance family:
    https://duckdb.org/docs/stable/sql/functions/array -#}
{% macro duckdb__point_in_time_retrieval(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, use_pgvector) -%}
  {{ return(featurehouse._pitr_query(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, 'duckdb')) }}
{%- endmacro %}


{#- pgvector's distance operators when the extension is installed
    (https://github.com/pgvector/pgvector#querying), else two-argument unnest over real[]:
    https://www.postgresql.org/docs/15/functions-array.html -#}
{% macro postgres__point_in_time_retrieval(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, use_pgvector) -%}
  {%- set pgvector = use_pgvector -%}
  {%- if pgvector is none -%}
    {%- set pgvector = false -%}
    {%- if execute -%}
      {%- set found = run_query("select 1 from pg_extension where extname = 'vector'") -%}
      {%- set pgvector = found.rows | length > 0 -%}
    {%- endif -%}
  {%- endif -%}
  {{ return(featurehouse._pitr_query(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, 'pgvector' if pgvector else 'postgres')) }}
{%- endmacro %}


{#- ---- the query, shared by every engine; `flavor` picks the distance expressions ---- -#}
{% macro _pitr_query(spine, view, query_column, top_k, timestamp_column, spine_columns, order_column, rank_column, distance_column, flavor) -%}
{%- set row = order_column or '__fh_row' -%}
{%- set columns = spine_columns if spine_columns is not none else featurehouse._relation_columns(spine) -%}
{%- set keys = featurehouse._quoted_list(view.join_keys) -%}
{%- set vector = view.vector -%}
{%- set dims = vector.dimensions | int -%}
{%- set tie_break = featurehouse._pit_tie_break(view) -%}
{%- set requested = view.features | map(attribute='name') | list -%}
{{ featurehouse._pit_spine_cte(spine, timestamp_column, order_column) }}
{#- each (keys, event, created) once: the full-tie winner, greatest feature tuple, NULL greatest -#}
, __fh_d as (
    select * from (
        select
            {{ keys }},
            event_timestamp as __fh_e,
            created_timestamp as __fh_c,
            {%- for name in requested %}
            {{ adapter.quote(name) }},
            {%- endfor %}
            {{ featurehouse._pitr_vector(adapter.quote(vector.name), dims, flavor) }} as __fh_v,
            row_number() over (
                partition by {{ keys }}, event_timestamp, created_timestamp
                order by {% for feature in tie_break %}{{ featurehouse._pit_order_expression(adapter.quote(feature.name), feature.dtype) }} desc nulls first{{ ", " if not loop.last }}{% endfor %}
            ) as __fh_n
        from {{ view.relation }}
        where event_timestamp is not null{% for key in view.join_keys %} and {{ adapter.quote(key) }} is not null{% endfor %}
    ) as ranked
    where __fh_n = 1
)
{#- when each row becomes a candidate: at its event time, or once it exists with filter_by_created -#}
, __fh_steps as (
    select
        {{ keys }},
        {%- if view.filter_by_created %}
        case when __fh_c > __fh_e then __fh_c else __fh_e end as __fh_at,
        {%- else %}
        __fh_e as __fh_at,
        {%- endif %}
        max({{ featurehouse.pit_version_key('__fh_e', '__fh_c') }}) as __fh_key
    from __fh_d
    group by 1{% for key in view.join_keys %}, {{ loop.index + 1 }}{% endfor %}
)
{#- the winning version from each candidate time until the next: a running max -#}
, __fh_iv as (
    select
        {{ keys }},
        __fh_at,
        coalesce(lead(__fh_at) over (partition by {{ keys }} order by __fh_at), {{ featurehouse._pitr_end_of_time() }}) as __fh_until,
        max(__fh_key) over (partition by {{ keys }} order by __fh_at rows between unbounded preceding and current row) as __fh_best
    from __fh_steps
)
, __fh_docs as (
    select
        {%- for key in view.join_keys %}
        d.{{ adapter.quote(key) }},
        {%- endfor %}
        i.__fh_at,
        i.__fh_until,
        d.__fh_e,
        {%- for name in requested %}
        d.{{ adapter.quote(name) }},
        {%- endfor %}
        d.__fh_v{{ featurehouse._pitr_document_extras('d.__fh_v', flavor) }}
    from __fh_iv as i
    join __fh_d as d
        on {% for key in view.join_keys %}d.{{ adapter.quote(key) }} = i.{{ adapter.quote(key) }} and {% endfor -%}
           {{ featurehouse.pit_version_key('d.__fh_e', 'd.__fh_c') }} = i.__fh_best
    where d.__fh_v is not null{{ featurehouse._pitr_usable('d.__fh_v', vector.metric, flavor) }}
)
, __fh_q as (
    select
        {{ row }} as __fh_qrow,
        __fh_ts as __fh_qts,
        {{ featurehouse._pitr_vector(adapter.quote(query_column), dims, flavor) }} as __fh_q
    from __fh_spine
    where __fh_ts is not null and {{ adapter.quote(query_column) }} is not null
)
, __fh_q2 as (
    select *{{ featurehouse._pitr_document_extras('__fh_q', flavor) }} from __fh_q where __fh_q is not null
)
{%- set live -%}
    d.__fh_at <= q.__fh_qts and q.__fh_qts < d.__fh_until
    {%- if view.ttl_seconds and view.ttl_seconds > 0 %} and d.__fh_e >= {{ dbt.dateadd('second', -1 * view.ttl_seconds, 'q.__fh_qts') }}{% endif -%}
{%- endset %}
, __fh_hits as (
    select
        q.__fh_qrow,
        {%- for key in view.join_keys %}
        d.{{ adapter.quote(key) }},
        {%- endfor %}
        {%- for name in requested %}
        d.{{ adapter.quote(name) }},
        {%- endfor %}
        {{ featurehouse._pitr_distance('d', 'q', vector.metric, flavor) }} as __fh_distance
    {#- as a CASE, the condition filters the cross product: DuckDB would otherwise plan an
        IEJoin, measured 3x slower here on 1,000 queries x 100k documents #}
    {%- if flavor == 'duckdb' %}
    from __fh_q2 as q, __fh_docs as d
    where case when {{ live }} then true else false end
    {%- else %}
    from __fh_q2 as q
    join __fh_docs as d on {{ live }}
    {%- endif %}
)
{%- if flavor == 'duckdb' %}
{#- the top k of each query by min_by(arg, key, k), a bounded heap per group, rather than
    numbering every pair: https://duckdb.org/docs/stable/sql/functions/aggregates -#}
{%- set hit_columns = view.join_keys + requested %}
, __fh_top as (
    select
        __fh_qrow,
        min_by(
            { {%- for column in hit_columns %}'{{ column }}': {{ adapter.quote(column) }}, {% endfor %}'__fh_distance': __fh_distance},
            {'d': __fh_distance{% for key in view.join_keys %}, 'k{{ loop.index }}': {{ adapter.quote(key) }}{% endfor %}},
            {{ top_k | int }}
        ) as __fh_list
    from __fh_hits
    group by __fh_qrow
)
, __fh_ranked as (
    select
        __fh_qrow,
        __fh_rank,
        {%- for column in hit_columns %}
        struct_extract(__fh_hit, '{{ column }}') as {{ adapter.quote(column) }},
        {%- endfor %}
        struct_extract(__fh_hit, '__fh_distance') as __fh_distance
    from (
        select __fh_qrow, unnest(generate_series(1, len(__fh_list))) as __fh_rank, unnest(__fh_list) as __fh_hit
        from __fh_top
    ) as hits
)
{%- else %}
, __fh_ranked as (
    select * from (
        select
            *,
            row_number() over (
                partition by __fh_qrow
                order by __fh_distance{% for key in view.join_keys %}, {{ featurehouse._pit_order_expression(adapter.quote(key), view.key_dtypes[loop.index0]) }}{% endfor %}
            ) as __fh_rank
        from __fh_hits
    ) as ordered
    where __fh_rank <= {{ top_k | int }}
)
{%- endif %}
select
    {%- for column in columns %}
    s.{{ adapter.quote(column) }},
    {%- endfor %}
    r.__fh_rank as {{ adapter.quote(rank_column) }},
    {%- for key in view.join_keys %}
    r.{{ adapter.quote(key) }},
    {%- endfor %}
    {%- for name in requested %}
    r.{{ adapter.quote(name) }} as {{ adapter.quote(view.prefix ~ name) }},
    {%- endfor %}
    r.__fh_distance as {{ adapter.quote(distance_column) }}
from __fh_spine as s
left join __fh_ranked as r on r.__fh_qrow = s.{{ row }}
order by s.{{ row }}, r.__fh_rank
{%- endmacro %}


{#- ---- helpers ------------------------------------------------------------------- -#}

{#- A vector column as the flavor computes with it; a vector of another length is NULL
    (the dbt test on the view's dimensions reports it at build time). -#}
{% macro _pitr_vector(expression, dims, flavor) -%}
  {%- if flavor == 'duckdb' -%}
    case when len({{ expression }}) = {{ dims }} then cast({{ expression }} as FLOAT[{{ dims }}]) end
  {%- elif flavor == 'pgvector' -%}
    case when cardinality({{ expression }}) = {{ dims }} then cast({{ expression }} as vector({{ dims }})) end
  {%- elif flavor == 'postgres' -%}
    case when cardinality({{ expression }}) = {{ dims }} then cast({{ expression }} as double precision[]) end
  {%- else -%}
    case when cardinality({{ expression }}) = {{ dims }} then {{ expression }} end
  {%- endif -%}
{%- endmacro %}

{#- The vector's norm, computed once per document and per query (the portable flavors). -#}
{% macro _pitr_document_extras(expression, flavor) -%}
  {%- if flavor == 'postgres' -%}
    , (select sqrt(sum(x * x)) from unnest({{ expression }}) as __fh_t(x)) as __fh_norm
  {%- elif flavor == 'portable' -%}
    , (select sqrt(sum(x * x)) from unnest({{ expression }}) as __fh_t(x)) as __fh_norm
  {%- endif -%}
{%- endmacro %}

{#- Documents a search can return: with cosine, a zero vector has no direction. -#}
{% macro _pitr_usable(expression, metric, flavor) -%}
  {%- if metric == 'cosine' -%}
    {%- if flavor == 'duckdb' %} and list_dot_product({{ expression }}, {{ expression }}) > 0
    {%- elif flavor == 'pgvector' %} and vector_norm({{ expression }}) > 0
    {%- else %} and (select sum(x * x) from unnest({{ expression }}) as __fh_t(x)) > 0
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

{% macro _pitr_distance(d, q, metric, flavor) -%}
  {%- set dv = d ~ '.__fh_v' -%}
  {%- set qv = q ~ '.__fh_q' -%}
  {%- if flavor == 'duckdb' -%}
    {%- set functions = {'cosine': 'array_cosine_distance', 'l2': 'array_distance', 'inner_product': 'array_negative_inner_product'} -%}
    cast({{ functions[metric] }}({{ dv }}, {{ qv }}) as double)
  {%- elif flavor == 'pgvector' -%}
    {%- set operators = {'cosine': '<=>', 'l2': '<->', 'inner_product': '<#>'} -%}
    cast({{ dv }} {{ operators[metric] }} {{ qv }} as double precision)
  {%- else -%}
    {%- if flavor == 'postgres' -%}
      {%- set pairs = 'unnest(' ~ dv ~ ', ' ~ qv ~ ') as __fh_t(x, y)' -%}
    {%- else -%}
      {%- set pairs = 'unnest(' ~ dv ~ ') with ordinality as __fh_a(x, i) join unnest(' ~ qv ~ ') with ordinality as __fh_b(y, j) on i = j' -%}
    {%- endif -%}
    {%- if metric == 'cosine' -%}
      1 - (select sum(x * y) from {{ pairs }}) / ({{ d }}.__fh_norm * {{ q }}.__fh_norm)
    {%- elif metric == 'l2' -%}
      sqrt((select sum((x - y) * (x - y)) from {{ pairs }}))
    {%- else -%}
      -(select sum(x * y) from {{ pairs }})
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

{% macro _pitr_end_of_time() -%}
  {{ return(adapter.dispatch('_pitr_end_of_time', 'featurehouse')()) }}
{%- endmacro %}

{% macro default___pitr_end_of_time() -%}
  cast('9999-12-31 23:59:59' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- 'infinity' is a timestamp in both: https://www.postgresql.org/docs/15/datatype-datetime.html -#}
{% macro duckdb___pitr_end_of_time() -%}
  cast('infinity' as timestamp)
{%- endmacro %}

{% macro postgres___pitr_end_of_time() -%}
  cast('infinity' as timestamp)
{%- endmacro %}
