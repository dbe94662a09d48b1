"""Pieces every runtime role shares: settings, emoji rules, event encoding, errors, logging."""
