"""Batch analysis beyond one process: ``fer predict --ray`` cuts the work into tasks (tasks.py, plain JSON, no Ray)
and runs them on a Ray actor pool (on_ray.py; Ray is the optional extra ``fercli[ray]``). Imports faces and model only."""
