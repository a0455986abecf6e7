"""Call recordings: where they live in the spool, who may fetch them (audited), how long they stay."""
