"""Helpers shared by the tests and the benches: throwaway repos, test servers, reference
implementations (import as ``from support.repos import write_repo``)."""
