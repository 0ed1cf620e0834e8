"""Durable, leased, ordered delivery to the outside world; each kind's deliverer is its owner's."""
