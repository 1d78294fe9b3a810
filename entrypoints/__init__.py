"""Top-level entry points: the ``tripwire`` command and the end-to-end demo.

The only code that sees both ``pipelines`` (batch jobs) and ``deployments`` (the Serve app); the library
``tripwire`` sees neither (``lint-imports`` checks the layering, see ``[tool.importlinter]``).
"""
