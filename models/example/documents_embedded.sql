-- The example's documents with their embedding as an array: the seed raw_documents (a CSV,
-- which cannot hold arrays) keeps each vector as its numbers separated by spaces.
-- This is the example's own model, not featurehouse output: feature_specs/documents.yml reads
-- it (`ref: documents_embedded`) and the compiled view casts `embedding` to array<float32>.
-- Splitting a string into an array has no portable SQL spelling, so it branches on the adapter
-- right here; a dispatched macro would have to live in macros/, which is featurehouse's dbt
-- package that every project installing it gets, not the example's.
select
  doc_id,
  event_timestamp,
  created,
  topic,
  lang,
  title,
{%- if target.type in ('spark', 'databricks') %}
  {#- dbt-spark's seeds load an empty CSV field (a withdrawn document's) into a string column
      as the text 'None' (they quote Python's None into their INSERT); make it NULL again #}
  nullif(text, 'None') as text,
  split(nullif(embedding_text, 'None'), ' ') as embedding
{%- else %}
  text,
  string_to_array(embedding_text, ' ') as embedding
{%- endif %}
from {{ ref('raw_documents') }}
