"""Operational scripts: the traffic simulator."""
