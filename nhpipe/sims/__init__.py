"""Simulated clouds, their projections, mock observations and simulation readers."""
