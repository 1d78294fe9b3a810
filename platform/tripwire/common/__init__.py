"""What every package shares: typed configs loaded from YAML and validated once (``config``), and the
registries of model parts (``registry``)."""
