"""Automated outbound calls (issue 13): dispatch reminders to units and 回访 to citizens.

An attempt scheduler in Redis (store.py), pure policy (policy.py: calling hours, retries, the
do-not-call list), a state machine per attempt (model.py), the dialler that claims due attempts
and originates them over the carrier trunk (service.py), the FastAGI script the answered call
runs (agi.py), and the HTTP routes (routes.py)."""
