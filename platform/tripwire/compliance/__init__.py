"""Compliance: what the decision log records (records), how serving writes it without waiting on it
(writer), the DSA statements of reasons (statements), appeals, and transparency reports (report)."""
