"""Listen, whisper, barge: a supervisor's phone joins a seat's call (Asterisk ChanSpy)."""
