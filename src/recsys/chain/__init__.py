"""The ranking chain: candidates -> features -> ranker input -> scores -> diversity -> top k.

One piece of the library that the transformer, ``recsys recommend`` and the evaluation all run,
so that what is evaluated is what is served. Callers bring their data access (bundle files or
the online store) and, online, their governance (threads, timeouts, degradation).
"""
