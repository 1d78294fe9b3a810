"""Training: the Ray Train loop (``loop``), its config and resume state, the Ray Data ingest UDF, the OCR stage
that trains the text model on text read in pictures (``pictures``), and whether preprocessed rows are cached."""
