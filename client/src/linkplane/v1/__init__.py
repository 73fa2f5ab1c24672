"""Generated linkplane v1 protocol modules."""
