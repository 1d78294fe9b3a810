"""Reporting: the HTML and plot helpers the evaluation and transparency reports share."""
