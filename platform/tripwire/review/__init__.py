"""Human review: the durable queue, the reviewer web app, active learning, agreement and feedback export
(see CONTRACT.md)."""
