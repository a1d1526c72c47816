"""Emergency linkage with call systems (domain.md §6): the escalation core, worker and channels."""
