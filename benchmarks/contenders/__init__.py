"""The servers compared with ours: a naive FastAPI endpoint and MLServer (scripts run as their
own processes, never imported by the suite)."""
