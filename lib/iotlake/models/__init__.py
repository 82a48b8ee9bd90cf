"""Runs the SQL models of sql/ in dependency order."""
