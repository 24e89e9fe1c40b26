"""The worker's consumer repairs celery 5.7.0 (newsroom/worker_consumer.py). These fail
loudly when the pinned celery or kombu changes what the repair relies on, so an upgrade
re-checks it instead of silently keeping a patch that no longer fits; the behaviour
itself is proven by a real worker through real Redis outages (test_broker_outage.py)."""

import inspect

import celery
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu import Connection

from newsroom import worker_consumer
from newsroom.celery import app


def test_the_worker_runs_the_repaired_consumer_and_sweeps_on_connecting():
    assert app.conf.worker_consumer == "newsroom.worker_consumer:Consumer"
    assert worker_consumer.SweepOnConnect in app.steps["consumer"]
    # Celery gives up on the broker after 100 attempts unless told to keep trying.
    assert app.conf.broker_connection_max_retries is None


def test_the_pinned_celery_still_closes_the_connection_again_after_collecting_it():
    """What the repair answers: if this fails, celery changed the method; read its new
    body and drop or adapt the repair (and the pin's comment in requirements.txt)."""
    assert celery.__version__ == "5.7.0"
    source = inspect.getsource(CeleryConsumer.on_connection_error_after_connected)
    collect = source.index("self.connection.collect(")
    assert "connection, self.connection = self.connection, None" in source[collect:]
    assert "ignore_errors(connection, connection.close)" in source[collect:]


def test_the_pinned_celery_reconnects_through_kombus_ensure_connection():
    source = inspect.getsource(CeleryConsumer.ensure_connected)
    assert "conn.ensure_connection(" in source
    # `ensure_connection` passes its arguments on to `_ensure_connection`.
    parameters = inspect.signature(Connection._ensure_connection).parameters
    for name in ("interval_start", "interval_step", "interval_max"):
        assert name in parameters


def test_the_pinned_kombu_still_detaches_the_transport_when_it_closes():
    # The transport losing its client is what made the second close (and any late
    # acknowledgement) raise AttributeError; the repair gives the client back.
    assert "self._transport.client = None" in inspect.getsource(Connection._do_close_transport)
