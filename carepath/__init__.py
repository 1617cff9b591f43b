"""The house: carepath put together from its parts.

`engine/` runs BPMN and knows neither the web nor social care; `api/` is the web app and
`handlers/` the social-care service tasks, both built on the engine. This package is the only
place that joins them: the installed `carepath` command (cli.py, the engine's commands plus the
social-care and web ones) and `carepath serve` (server.py, the web app with the timer job).
"""
