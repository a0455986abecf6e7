"""Tickets and messages: the ticket store, the voicemail spool, the ASR queue (and, with no
model configured, the in-controller worker that files messages without transcripts), the
calendar that counts tickets' deadlines, and the webhook export."""

from __future__ import annotations

from dataclasses import dataclass

from common.clock import Clock
from hotline.calendar_watch import CalendarWatch
from hotline.config import Config
from hotline.wiring.calls import CallParts
from ivr.dialplan.registry import DialplanRegistry
from ivr.interpreter import VOICEMAIL_DIR
from tickets.export import WebhookExporter
from tickets.store import RedisTicketStore, export_stream
from voicemail.asr import NoTranscription
from voicemail.queue import AsrQueue
from voicemail.sink import TicketStoreSink
from voicemail.spool import SpoolMonitor
from voicemail.worker import AsrWorker, WorkerSettings


@dataclass(frozen=True)
class MessageParts:
    tickets: RedisTicketStore
    asr_queue: AsrQueue
    asr_worker: AsrWorker | None  # None: `asr-worker` processes (a model is configured) file the tickets
    spool: SpoolMonitor
    calendar: CalendarWatch


def worker_settings(config: Config) -> WorkerSettings:
    return WorkerSettings(visibility_timeout_s=config.asr.visibility_timeout_s, max_attempts=config.asr.max_attempts)


def build_messages(config: Config, clock: Clock, calls: CallParts, dialplans: DialplanRegistry) -> MessageParts:
    platform = config.platform.id
    tickets = RedisTicketStore(
        calls.redis,
        lambda _platform: dialplans.current.calendar,
        export_stream(platform),
        caller_keys=calls.caller_keys,  # a caller's open ticket named by the caller index's digest
    )
    ticket_sink = TicketStoreSink(tickets, clock)
    asr_queue = AsrQueue(calls.redis, ticket_sink, platform)
    # no model configured: this process files the tickets itself, without transcripts, so no
    # message waits for a worker that does not exist (with a model, `asr-worker`s do it)
    asr_worker = (
        AsrWorker(
            asr_queue,
            NoTranscription(),
            ticket_sink,
            config.paths.spool_dir,
            consumer=f"controller-{platform}",
            settings=worker_settings(config),
            clock=clock,
        )
        if config.asr.model_path is None
        else None
    )
    return MessageParts(
        tickets=tickets,
        asr_queue=asr_queue,
        asr_worker=asr_worker,
        spool=SpoolMonitor(config.paths.spool_dir / VOICEMAIL_DIR, config.spool.min_free_mb),
        calendar=CalendarWatch(
            platform, config.dialplan_path().name, lambda: dialplans.current.calendar, tickets, clock
        ),
    )


def webhook_exporter(config: Config, calls: CallParts) -> WebhookExporter | None:
    """The export of tickets to the configured webhook, if one is."""
    if not config.tickets.webhook_url:
        return None
    return WebhookExporter(
        calls.redis,
        config.tickets.webhook_url,
        consumer=f"controller-{config.platform.id}",
        token=config.tickets.webhook_token,
        max_attempts=config.tickets.webhook_max_attempts,
        stream=export_stream(config.platform.id),
    )
