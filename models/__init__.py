"""ML and statistics as pure code: no network, no database, no Kafka, no clock.

Public surface, by module (imported from there, so that importing one piece does not load
scikit-learn for the others):

- ``models.features``: ``FEATURE_NAMES``, ``feature_matrix``, ``feature_dict`` — the one feature
  definition shared by the live path, replays, training and evaluation.
- ``models.inputs``: ``ModelInputs``, ``MODEL_FEATURES`` — the columns a model reads, by name,
  and its zone encodings, made from the booking features.
- ``models.zones``: ``ZoneEncoding``, ``zone_cells`` — target encodings of pickup and dropoff
  cells learned from history.
- ``models.heuristic``: ``HeuristicParams``, ``DEFAULT_PARAMS``, ``predict``, ``fit_heuristic``.
- ``models.forest``: ``ForestPredictor`` (batched predictions with tree-agreement confidence).
- ``models.boosting``: ``BoostingConfig``, ``fit_boosting``, ``fit_spread``,
  ``BoostingPredictor`` (absolute-error gradient boosting, its confidence from a spread model
  of the expected absolute error).
- ``models.compiled_forest``: ``compile_forest``, ``CompiledForest`` — an ensemble of trees as
  flat arrays, evaluated with whole-batch numpy, scikit-learn's results bit for bit.
- ``models.compiled_boosting``: ``compile_boosting`` — a ``HistGradientBoostingRegressor`` into
  the same arrays.
- ``models.risk``: ``risk_levels``.
- ``models.routing``: ``bucket``, ``routes_to_ml`` — the sticky rollout hash.
- ``models.training``: the training pipeline with its time-ordered holdout.
- ``models.synthetic``: ``SyntheticWorld``, ``generate_history``, ``IncidentConfig``,
  ``invalid_booking_payloads``.
- ``models.metrics``: ``mae``, ``r2`` and friends.
- ``models.rolling``: ``MetricSums`` (exact, mergeable sums behind MAE, RMSE, R², bias, the
  underestimate share and the P90 coverage), ``BucketKey``, ``Series``, ``hour_start``,
  ``bucketize``, ``merge_buckets``, ``merge_window``, ``daily``, ``by_arm`` — rolling metrics per
  arm in hourly event-time buckets.
- ``models.ab``: ``compare_arms``, ``ABResult``, ``Verdict``, ``ArmCounts``,
  ``sample_ratio_check`` — the A/B analysis of ML against the heuristic (Welch, SRM).
- ``models.drift``: the drift monitors (error, feature and prediction drift) and their
  calibration; see its package docstring.
"""
