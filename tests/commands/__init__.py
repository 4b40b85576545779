"""The management commands (cometchat_sync, cometchat_prune, ...), signals included."""
