"""Upstream: signed records for the CEC, the durable outbox, the uplink and the USB export."""
