"""Running dispatches: claim in the ledger → channel → result; the clock, the queue, the workers, the status."""
