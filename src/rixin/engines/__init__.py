"""Inference engines behind one Protocol (base.py); they run inside Ray actors (actor.py)."""
