"""Data: the sample contract (``sample``), media decoding with limits (``media``), preprocessing
(``preprocess``, ``textnorm``), manifest rows and their quarantine (``rows``, ``quarantine``), splits, public
dataset adapters and the synthetic corpus."""
