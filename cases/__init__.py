"""The seat's case desk: a call becomes a case (a ticket with ``source: phone``), or joins one."""
