"""The domain: models, the job state machine, services that change state, the event log."""
