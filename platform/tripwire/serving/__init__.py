"""Serving helpers the Serve apps in ``deployments/`` use: busy-aware batching, the OpenAI-compatible
request format, and the HTTP API's metrics."""
