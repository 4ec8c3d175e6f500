"""Prometheus metrics (official client), on a registry of our own made on first use.

Labels are low-cardinality only: outcomes, channels, states, SOP steps; never an address
or a ticket number. Counters are bumped where things happen; the database's figures
(tickets by state, outbox depth and age, open SLA breaches) are read at scrape time.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: Seconds from the sync that found a mail to its ticket's commit.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    mails_ingested: Counter
    mails_quarantined: Counter
    intake_latency: Histogram
    sends: Counter
    send_failures: Counter
    telegram_429: Counter


@functools.cache
def metrics() -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=registry,
        mails_ingested=Counter(
            "lpse_mails_ingested",
            "Mails taken in, by outcome",
            ["outcome"],
            registry=registry,
        ),
        mails_quarantined=Counter(
            "lpse_mails_quarantined", "Mails set aside after repeated failures", registry=registry
        ),
        intake_latency=Histogram(
            "lpse_intake_latency_seconds",
            "Seconds from the IMAP sync that found mail to its commit",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        sends=Counter(
            "lpse_outbox_sends",
            "Outbox items delivered, per channel",
            ["channel"],
            registry=registry,
        ),
        send_failures=Counter(
            "lpse_outbox_send_failures",
            "Failed delivery attempts (temporary or permanent), per channel",
            ["channel"],
            registry=registry,
        ),
        telegram_429=Counter(
            "lpse_telegram_retry_after", "Telegram 429 answers (RetryAfter)", registry=registry
        ),
    )


def record_sync(outcomes: Mapping[str, int], quarantined: int, took: dt.timedelta) -> None:
    found = metrics()
    for outcome, count in outcomes.items():
        found.mails_ingested.labels(outcome).inc(count)
        for _ in range(count):
            found.intake_latency.observe(took.total_seconds())
    if quarantined:
        found.mails_quarantined.inc(quarantined)


def sent(channel: str) -> None:
    metrics().sends.labels(channel).inc()


def failed(channel: str) -> None:
    metrics().send_failures.labels(channel).inc()


def retry_after() -> None:
    metrics().telegram_429.inc()


@dataclass(frozen=True)
class DatabaseFigures:
    tickets_by_state: Mapping[str, int]
    outbox_depth: Mapping[str, int]
    outbox_oldest_seconds: Mapping[str, float]
    breaches_by_step: Mapping[str, int]


class DatabaseCollector(Collector):
    """Gauges read from the database when /metrics is scraped (in the server's thread)."""

    def __init__(self, read: Callable[[], DatabaseFigures]) -> None:
        self.read = read

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self.read()
        yield _gauge("lpse_tickets", "Tickets by state", "state", figures.tickets_by_state)
        yield _gauge(
            "lpse_outbox_depth",
            "Outbox items waiting, per channel",
            "channel",
            figures.outbox_depth,
        )
        yield _gauge(
            "lpse_outbox_oldest_seconds",
            "Age of the oldest waiting outbox item, per channel",
            "channel",
            figures.outbox_oldest_seconds,
        )
        yield _gauge(
            "lpse_sla_breaches_open",
            "Running SOP clocks past their deadline, per step",
            "step",
            figures.breaches_by_step,
        )


def _gauge(name: str, help_text: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
