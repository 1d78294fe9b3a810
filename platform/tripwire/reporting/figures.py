"""Plots for the reports: matplotlib figures (no pyplot state) rendered to inline PNG."""

from __future__ import annotations

import base64
import io

from tripwire.reporting.html import escape

FIGURE_DPI = 80


def figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=FIGURE_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def img(png: str, alt: str, caption: str = "") -> str:
    caption = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{png}">{caption}</figure>'


def style_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=9.5)
    ax.set_xlabel(xlabel, fontsize=8.5)
    ax.set_ylabel(ylabel, fontsize=8.5)
    ax.tick_params(labelsize=7.5)
    ax.grid(alpha=0.25, linewidth=0.6)


def no_data(ax, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=8, color="#777", transform=ax.transAxes)
