"""Emergency linkage: people and on-duty schedules, endpoints, chains, policies, incidents, drills."""
