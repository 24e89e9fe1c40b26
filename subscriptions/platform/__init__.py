"""Plumbing with no product words in it: the task queue, leases, prepared statements, the
Redis client."""
