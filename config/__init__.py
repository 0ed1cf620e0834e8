"""How this deployment reaches its infrastructure: settings, logging, database, Redis."""
