"""Webhooks to the hospitals' systems (Standard Webhooks): events, endpoints, the deliverer."""
