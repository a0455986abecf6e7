"""Every metric family the controller's /metrics exposes, with its type (names as scrapers see them)."""

from __future__ import annotations

# family -> type; a counter's family is its samples' name without _total (prometheus-client's parser)
HOTLINE_FAMILIES: dict[str, str] = {
    "hotline_ami_connected": "gauge",
    "hotline_ami_logins": "counter",
    "hotline_redis_up": "gauge",
    "hotline_redis_slow": "gauge",
    "hotline_redis_call_path_timeouts": "counter",
    "hotline_redis_call_path_errors": "counter",
    "hotline_redis_write_backlog": "gauge",
    "hotline_redis_writes_failed": "counter",
    "hotline_redis_writes_dropped": "counter",
    "hotline_redis_replica_waits": "counter",
    "hotline_redis_replica_shortfalls": "counter",
    "hotline_redis_writes_unconfirmed": "counter",
    "hotline_redis_replica_hold_off": "gauge",
    "hotline_redis_call_path_wait_seconds": "histogram",
    "hotline_ivr_step_redis_wait_seconds": "histogram",
    "hotline_agi_wait_seconds": "histogram",
    "hotline_agi_step_seconds": "histogram",
    "hotline_ami_event_backlog": "gauge",
    "hotline_ami_event_backlog_peak": "gauge",
    "hotline_ami_events_dropped": "counter",
    "hotline_ami_overflow_resyncs": "counter",
    "hotline_consultations_cleaned_up": "counter",
    "hotline_agi_sessions": "counter",
    "hotline_agi_sessions_active": "gauge",
    "hotline_agi_sessions_failed": "counter",
    "hotline_agi_bad_requests": "counter",
    "hotline_agi_unauthenticated": "counter",
    "hotline_calls_live": "gauge",
    "hotline_call_records_unsaved": "gauge",
    "hotline_callbacks_unsaved": "gauge",
    "hotline_voicemail_failed": "counter",
    "hotline_spool_ok": "gauge",
    "hotline_spool_free_mb": "gauge",
    "hotline_asr_worker_up": "gauge",
    "hotline_call_record_save_failures": "counter",
    "hotline_dialplan_reloads": "counter",
    "hotline_dialplan_versions_missing": "counter",
    "hotline_dialplan_versions_kept": "gauge",
    "hotline_seats": "gauge",
    "hotline_acd_offers": "counter",
    "hotline_acd_offers_missed": "counter",
    "hotline_acd_offers_not_started": "counter",
    "hotline_acd_offers_unconfirmed": "counter",
    "hotline_seat_answered_24h": "gauge",
    "hotline_seat_talk_seconds_avg_24h": "gauge",
    "hotline_queue_waiting": "gauge",
    "hotline_queue_callbacks_waiting": "gauge",
    "hotline_queue_longest_wait_seconds": "gauge",
    "hotline_queue_offered_24h": "gauge",
    "hotline_queue_answer_rate_24h": "gauge",
    "hotline_queue_abandon_rate_24h": "gauge",
    "hotline_queue_service_level_15s_24h": "gauge",
    "hotline_queue_asa_seconds_24h": "gauge",
    "hotline_calendar_days_left": "gauge",
    "hotline_tickets_provisional": "gauge",
    "hotline_api_unauthenticated": "counter",
    "hotline_websockets_pending_auth": "gauge",  # web/socket_auth.py PendingSockets
    "hotline_websockets_pending_refused": "counter",
    "hotline_websockets_authenticated": "gauge",  # web/socket_auth.py TokenSockets
    "hotline_websockets_token_refused": "counter",
    "hotline_knowledge_entries": "gauge",  # knowledge/ (issue 12)
    "hotline_knowledge_reloads": "counter",
    "hotline_knowledge_uses_unsaved": "gauge",
    "hotline_survey_answers": "counter",  # ivr/after_seat.py (issue 12)
    "hotline_satisfaction_rate_24h": "gauge",
    "hotline_queue_satisfaction_rate_24h": "gauge",
    "hotline_seat_satisfaction_rate_24h": "gauge",
    "hotline_dialback_started": "counter",  # dialback/ (issue 13)
    "hotline_dialback_reached": "counter",
    "hotline_dialback_in_progress": "gauge",
    "hotline_outbound_attempts": "counter",  # outbound/ (issue 13)
    "hotline_outbound_channels_in_use": "gauge",
    "hotline_alert_active": "gauge",  # wallboard/ (issue 14)
    "hotline_wallboard_viewers": "gauge",
}

# present only sometimes: free space unknown, no in-controller ASR worker, Redis not read, no seats/queues
OPTIONAL = frozenset(
    {
        "hotline_spool_free_mb",
        "hotline_asr_worker_up",
        "hotline_tickets_provisional",
        "hotline_seat_answered_24h",
        "hotline_seat_talk_seconds_avg_24h",
        # no sample while there is no score: nothing offered, nobody answered a survey
        "hotline_queue_answer_rate_24h",
        "hotline_queue_abandon_rate_24h",
        "hotline_queue_service_level_15s_24h",
        "hotline_survey_answers",
        "hotline_satisfaction_rate_24h",
        "hotline_queue_satisfaction_rate_24h",
        "hotline_seat_satisfaction_rate_24h",
        "hotline_alert_active",
        "hotline_outbound_attempts",  # no sample before the first try
    }
)

PROCESS_FAMILIES = (
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
)
