"""The recordings as documents: catalogue, review, policies and retention, access, renditions."""
