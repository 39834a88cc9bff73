"""A patrol: one cycle of reconcile, decide and queue (cycle), the town's health and each plugin's facts (health),
and the JSON shapes the Deacon reads (shapes)."""
