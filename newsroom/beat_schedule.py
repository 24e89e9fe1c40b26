"""What Celery beat runs, and how often; fixed in code, not operators' knobs."""

# Seconds between two sweeps of the outbox (emails whose enqueue failed while the broker
# was down, lost tasks, and a pending import's confirmations as they fall due), and of the
# unsubscribes kept in Redis while the database was unavailable. Not an operator's knob:
# the promise that mail queued during a broker outage leaves within 30 s rests on it.
OUTBOX_SWEEP_INTERVAL = 10
BEAT_SCHEDULE = {
    "requeue-stale-work": {
        "task": "subscriptions.tasks.requeue_stale_outbound_emails",
        "schedule": OUTBOX_SWEEP_INTERVAL,
    },
    "apply-deferred-unsubscribes": {
        "task": "subscriptions.tasks.apply_deferred_unsubscribes",
        "schedule": OUTBOX_SWEEP_INTERVAL,
    },
    "take-newsletter-snapshots": {
        "task": "subscriptions.tasks.take_newsletter_snapshots",
        "schedule": 3600,
    },
    "discard-expired-personal-data": {
        "task": "subscriptions.tasks.expire_unconfirmed_subscriptions",
        "schedule": 86_400,
    },
    "reconcile-member-count": {
        "task": "subscriptions.tasks.reconcile_member_count",
        "schedule": 60,
    },
}
