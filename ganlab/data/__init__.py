"""Data sets: each builder returns an object with `facts` (what models need to know) and `batches`."""

from ganlab.data.memory import DataFacts, InMemoryImages

__all__ = ["DataFacts", "InMemoryImages"]
