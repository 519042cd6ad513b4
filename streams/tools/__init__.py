"""Development tools: the local stack, the bench, the demo, the API load check, the model quality
report and the drift calibration. The runtime never imports them (an import-linter contract)."""
