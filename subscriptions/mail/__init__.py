"""Every email, from outbox row to provider: queueing, claiming, building and sending it,
and the suppression list that stops it."""
