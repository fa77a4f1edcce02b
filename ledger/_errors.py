"""The ledger's own failure: a request that contradicts what the ledger already recorded."""


class LedgerConflict(Exception):
    """The ledger's state rules the request out, and retrying cannot change that.

    Raised for settling a job the other way (capturing a released job, releasing a captured
    one) and for ids the ledger does not know. Either is a programming or operator error:
    callers must not retry it (Temporal activities should raise it as non-retryable).
    """
