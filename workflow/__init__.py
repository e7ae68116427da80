"""Xinbao's domain: deals, their checks, routing, pricing and the Redis store they live in."""
