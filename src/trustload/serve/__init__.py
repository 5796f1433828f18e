"""The serving runtime (zone Z6): gated start-up, verified loading, OIP v2 HTTP, refresh."""
