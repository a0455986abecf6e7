"""Seats call missed callers back (issue 13, item 3): click-to-call from the desk and blended offers."""
