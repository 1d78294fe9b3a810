"""Training: the Ray Train loop (``loop``), its config and resume state, the Ray Data ingest UDF, and
whether preprocessed rows are cached."""
