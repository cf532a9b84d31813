"""Past one process: ingestion shards and API nodes talking over NATS JetStream.

``--role ingest`` runs today's ingestion, features and frame publisher for the
symbols it owns and publishes every encoded frame once on ``liq.frame.<symbol>``
(alerts on ``liq.alert.<symbol>``, its health on ``liq.health.<node>``);
``--role api`` has no exchange connection and serves REST, ``/ws`` and the
dashboard from the bus. ``--role all`` (the default) never imports anything here
but :mod:`bus.errors`, so the one-process product has no NATS dependency.

    subjects.py    subject, stream and bucket names; which symbols a shard takes
    messages.py    the typed messages on the bus (msgspec), decoded once at the edge
    connection.py  the NATS connection: first connect or a clear error, reconnects for ever
    leases.py      ownership of a symbol: a lease in a JetStream key-value bucket
    ingest_node.py the ingest role: the one-process stack plus its publications
    api_node.py    the API role: frames, health and history from the bus into the API
    api_routes.py  /health, /book, /simulate and /metrics as an API node answers them
    nats_server.py a local nats-server process (tests, benchmarks, make cluster)
    cluster.py     make cluster: a NATS server, two ingest shards and two API nodes
"""
