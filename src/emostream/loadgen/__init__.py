"""Simulated viewers: the plug-and-play emoji generator and the Locust load test."""
