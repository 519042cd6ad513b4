"""ML and statistics as pure code: no network, no database, no Kafka, no clock.

Public surface, by module (imported from there, so that importing one piece does not load
scikit-learn for the others):

- ``models.features``: ``FEATURE_NAMES``, ``feature_matrix``, ``feature_dict`` — the one feature
  definition shared by the live path, replays, training and evaluation.
- ``models.heuristic``: ``HeuristicParams``, ``DEFAULT_PARAMS``, ``predict``, ``fit_heuristic``.
- ``models.forest``: ``ForestPredictor`` (batched predictions with tree-agreement confidence).
- ``models.risk``: ``risk_levels``.
- ``models.routing``: ``bucket``, ``routes_to_ml`` — the sticky rollout hash.
- ``models.training``: the training pipeline with its time-ordered holdout.
- ``models.synthetic``: ``SyntheticWorld``, ``generate_history``, ``invalid_booking_payloads``.
- ``models.metrics``: ``mae``, ``r2`` and friends.
"""
