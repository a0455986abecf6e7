"""Voicemail to case tickets: durable spool, vosk transcription, tickets (issue 5)."""
