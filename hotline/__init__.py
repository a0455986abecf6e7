"""hotline12345: the app shell (config, CLI, HTTP API, wiring) of the 12345 hotline backend."""

__version__ = "0.1.0"
