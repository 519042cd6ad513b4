"""The prediction path: bookings in, predictions out.

Follow a booking: :mod:`streams.worker.agents` (the ``predict`` agent) hands each batch to
:mod:`streams.worker.runtime`, which sends it to the engine process (:mod:`streams.predict.engine`);
there :mod:`streams.predict.batch` decodes, enriches with weather, routes by flag, predicts and
produces each prediction to the ``predictions`` topic.

- ``batch``: one batch of bookings to predictions and dead letters (pure of Kafka).
- ``engine``: the process that holds the model, and sends a batch's results to Kafka.
- ``path``: the prediction path wired from settings (flags, weather, models), shared with replay.
- ``model_holder``: the champion model, reloaded when the registry changes.
- ``weather``: the weather service (OpenWeather behind Redis) built from settings.
- ``replay``: ``delaycast replay``, the same path over stored bookings.
"""
