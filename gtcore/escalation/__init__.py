"""Escalations: raising, routing and re-escalating them (escalations), their settings, and delivery to people."""
