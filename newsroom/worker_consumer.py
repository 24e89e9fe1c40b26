"""The Celery worker's consumer: how it outlives the broker and what it does each time
it (re)connects. `CELERY_WORKER_CONSUMER` names the class; newsroom/celery.py adds the
step.

One repair for celery 5.7.0 (pinned in requirements.txt).
`Consumer.on_connection_error_after_connected` calls `connection.collect()` and then
`connection.close()`. With the Redis transport and tasks still unacknowledged (acks_late
tasks running in the threads pool), `collect()` closes the channel while Redis is down,
so the channel's attempt to hand its unacknowledged messages back fails half-way, and
then detaches the transport (`transport.client = None`). The second close tries the
hand-back again through a transport that is gone and raises `AttributeError: 'NoneType'
object has no attribute 'hostname'`, which `ignore_errors` does not ignore: the worker
logs "Unrecoverable error" and exits. A task that ends afterwards acknowledges through
that same transport and stops the event loop the same way. celery 5.6.3 did not close
again after `collect()`. tests/test_broker_outage.py runs the production worker through
real Redis outages; tests/test_worker_consumer.py fails if the pinned celery changes
what this relies on.
"""

import logging
from functools import partial

from celery import bootsteps
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu import Connection

logger = logging.getLogger(__name__)

# Seconds between attempts to reach a broker that is down: kombu's default grows to 30,
# which alone would break the promise that mail queued during an outage leaves within
# 30 s of the broker's return.
RECONNECT_INTERVAL_START = 1.0
RECONNECT_INTERVAL_STEP = 1.0
RECONNECT_INTERVAL_MAX = 3.0

# Sent by name: this module belongs to the deployment, below the app's tasks.
SWEEP_TASK = "subscriptions.tasks.requeue_stale_outbound_emails"
RESET_TASK = "subscriptions.tasks.requeue_outbound_emails_after_broker_reset"


class Consumer(CeleryConsumer):
    def ensure_connected(self, conn: Connection) -> Connection:
        conn.ensure_connection = partial(  # type: ignore[method-assign]
            conn.ensure_connection,
            interval_start=RECONNECT_INTERVAL_START,
            interval_step=RECONNECT_INTERVAL_STEP,
            interval_max=RECONNECT_INTERVAL_MAX,
        )
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        transport = connection.transport if connection is not None else None
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            if self.connection is not None:
                # Not the failed second close (the consumer lets go of the connection
                # before it closes it): a bug of another kind, so let it stop the worker.
                raise
            logger.warning(
                "closing the lost broker connection failed (%r); reconnecting anyway", error
            )
        finally:
            # Tasks still running were taken on the lost channel and acknowledge on it
            # when they end: through a transport that knows its broker again, an ack
            # fails as a connection error (logged) or, once Redis is back, goes through.
            if transport is not None and transport.client is None:
                transport.client = connection


class SweepOnConnect(bootsteps.StartStopStep):
    """Each time the worker (re)connects to the broker: sweep the outbox at once, so
    mail queued while the broker was down leaves now rather than at the next beat; and
    if the broker came back without the messages it held, enqueue every waiting email
    again (one worker does, whichever sees it first)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, c: CeleryConsumer) -> None:
        from subscriptions.platform.task_queue import broker_lost_its_messages

        try:
            if broker_lost_its_messages(c.app.conf.broker_url):
                c.app.send_task(RESET_TASK)
            c.app.send_task(SWEEP_TASK)
        except Exception:  # noqa: BLE001 - the beat's sweep is the safety net
            logger.warning("could not ask for an outbox sweep on connecting", exc_info=True)
