"""A stream's life apart from any one connection: the pump and its event log."""
