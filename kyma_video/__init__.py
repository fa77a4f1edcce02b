"""kyma-video: a Temporal-orchestrated job runner for AI video generation.

This package holds what every layer shares: settings, the request/job models, error codes,
money arithmetic and the typed client. Orchestration lives in ``workflows``, effects in
``activities``, and the things effects touch in ``providers``, ``ledger`` and ``blob``.
"""
