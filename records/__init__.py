"""Record types every stage shares (rollout → judge → learner), kept apart so no stage owns them."""
