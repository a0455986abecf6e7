"""Automatic call distribution: seats, queues, skills, routing (issue 4)."""
