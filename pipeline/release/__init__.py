"""Promotion and rollback: the bundle a release ships, the journaled git steps, and git itself."""
