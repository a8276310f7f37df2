"""`publisher serve`: feeds, subscribe, confirm, unsubscribe, the team's pages."""
