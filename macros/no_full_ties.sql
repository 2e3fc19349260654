{#-
  Generic test no_full_ties(columns): rows that share the join keys, event time and created
  time. The point-in-time join still answers deterministically (README, "Full ties"), but
  such rows usually mean a source loaded twice, so the compiled schema.yml runs this test
  at severity warn.
-#}
{% test no_full_ties(model, columns) %}
select
    {% for column in columns %}{{ adapter.quote(column) }}, {% endfor %}count(*) as rows_in_tie
from {{ model }}
group by {% for column in columns %}{{ adapter.quote(column) }}{{ ", " if not loop.last }}{% endfor %}
having count(*) > 1
{% endtest %}
