"""Plans: what a request or training set means (views, features, window aggregations), as
the macro arguments the warehouse runs. Imports spec and below."""
