"""What a trial is evaluated on and how: the search's data (log, score table, split,
estimator), the fusion objective with its guardrails, and the loss-weight objective with
its ranker cache. Import the modules themselves; this package imports nothing, so that
commands which never train a ranker do not pay for torch."""
