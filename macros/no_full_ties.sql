{#-
  Generic test no_full_ties(columns): rows that share the join keys, event time and created
  time. The point-in-time join still answers deterministically (docs/point-in-time.md, the full-tie rule), but
  such rows usually mean a source loaded twice, so the compiled schema.yml runs this test
  at severity warn.
  schema.yml passes `columns` under `arguments:` (dbt 1.10+ warns on test arguments outside
  it); dbt 1.8 and 1.9 do not know that property and pass it on as a keyword argument, so the
  macro takes it from there too, and one compiled schema.yml works on every supported dbt.
-#}
{% test no_full_ties(model, columns=none, arguments=none) %}
{%- set columns = columns if columns is not none else arguments['columns'] -%}
select
    {% for column in columns %}{{ adapter.quote(column) }}, {% endfor %}count(*) as rows_in_tie
from {{ model }}
group by {% for column in columns %}{{ adapter.quote(column) }}{{ ", " if not loop.last }}{% endfor %}
having count(*) > 1
{% endtest %}
