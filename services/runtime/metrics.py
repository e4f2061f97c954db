"""Metrics of the shared consumer loop, labelled by service and consumer."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Every metric of the consumer loop is per service and durable consumer.
CONSUMER = ("service", "consumer")

MESSAGES = Counter(
    "roadwatch_messages_total",
    "Messages handled by a consumer, by result (ack, nak, dead_letter).",
    [*CONSUMER, "result"],
)
HANDLER_SECONDS = Histogram(
    "roadwatch_handler_duration_seconds",
    "Time to decode and handle one message (or one batch).",
    CONSUMER,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_PROGRESS = Counter(
    "roadwatch_in_progress_acks_total",
    "In-progress acks sent for messages held half the consumer's ack_wait (a long batch, a backlog in hand).",
    CONSUMER,
)
PENDING = Gauge(
    "roadwatch_consumer_pending",
    "Messages in the stream not yet delivered to this durable consumer, as of the last fetch.",
    CONSUMER,
)
DEAD_LETTERS = Counter(
    "roadwatch_dead_letters_total",
    "Messages sent to the dead-letter subject, by error kind.",
    [*CONSUMER, "error"],
)
PUBLISHED = Counter(
    "roadwatch_published_total",
    "Events published, by stream result (stored, duplicate).",
    ["service", "result"],
)
