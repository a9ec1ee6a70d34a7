"""Running tasks outside the caller's process: the wire codec, the HTTP client, the worker's router."""
