"""The moderation core: samples -> complete results (``moderator``), the scoring kernels every backend
shares (``scoring``), and whole-result parity between paths (``parity``)."""
