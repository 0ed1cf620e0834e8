"""The edge: aiohttp application, Socket.IO events, REST routes, JWT verification, the CLI."""
