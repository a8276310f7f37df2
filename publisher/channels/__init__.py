"""Channels: where records go (feeds, email, social networks)."""
