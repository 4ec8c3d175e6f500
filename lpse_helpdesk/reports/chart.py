"""A picture of the period: tickets received per day, and SLA compliance per SOP step.

matplotlib is imported inside the function (it is slow to import and only this needs it),
and its object API with the Agg canvas is used, never pyplot's global state.
"""

from __future__ import annotations

import io
import math

from lpse_helpdesk.domain.model import SOP_STEP_LABELS
from lpse_helpdesk.reports.formatting import format_count, format_percent
from lpse_helpdesk.reports.summary import RecapSummary

_BAR = "#2F6DB5"
_SLA = "#2E8B57"


def render_chart(summary: RecapSummary, lpse_name: str) -> bytes:
    """A PNG image (bytes) of the period's tickets per day and SLA compliance per step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 7.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    days_axis, sla_axis = figure.subplots(2, 1, height_ratios=(3, 2))
    figure.suptitle(f"Rekap Helpdesk {lpse_name} · {summary.period.label}", fontsize=13)

    days = [day for day, _ in summary.per_day]
    counts = [count for _, count in summary.per_day]
    days_axis.bar(range(len(days)), counts, color=_BAR)
    step = max(1, math.ceil(len(days) / 10))  # at most about ten date labels
    days_axis.set_xticks(
        range(0, len(days), step), [f"{d:%d/%m}" for d in days[::step]], fontsize=8
    )
    days_axis.set_title(
        f"Tiket diterima per hari (jumlah {format_count(summary.received)})", fontsize=11
    )
    days_axis.set_ylabel("Tiket")
    days_axis.yaxis.get_major_locator().set_params(integer=True)
    days_axis.grid(axis="y", alpha=0.3)

    steps = list(reversed(summary.steps))
    labels = [SOP_STEP_LABELS[item.step] for item in steps]
    values = [item.percent or 0.0 for item in steps]
    sla_axis.barh(range(len(steps)), values, color=_SLA)
    sla_axis.set_yticks(range(len(steps)), labels, fontsize=9)
    sla_axis.set_xlim(0, 110)
    sla_axis.set_xlabel("% tepat waktu")
    sla_axis.set_title("Mutu Baku Waktu per langkah SOP", fontsize=11)
    for index, item in enumerate(steps):
        text = (
            f"{format_percent(item.met, item.judged)} "
            f"({format_count(item.met)}/{format_count(item.judged)})"
            if item.judged
            else "belum ada data"
        )
        sla_axis.text(values[index] + 1, index, text, va="center", fontsize=8)
    sla_axis.grid(axis="x", alpha=0.3)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
