"""The audience: subscribers, CSV rows, recipients of a dispatch, double opt-in, unsubscribe, signed tokens."""
