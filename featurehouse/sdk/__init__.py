"""The Python SDK: FeatureStore (Feast's method names) and RetrievalJob."""
