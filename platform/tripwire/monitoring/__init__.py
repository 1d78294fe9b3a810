"""Monitoring: score and decision drift over windows of served or scanned results."""
