"""neurank: interaction-based neural re-ranking with a BM25 first stage and ir_measures evaluation.

Data flows one way: files -> records -> tokens -> ids -> padded tensors + masks -> scores -> run -> metrics.
"""

__version__ = "0.1.0"
