"""The few pieces every roadwatch service shares: settings, logs, lifecycle, bus, HTTP.

Functions, not a framework: each service's main.py calls them in the same order
(settings → connect → consume → drain), and everything else stays in the service.
"""
