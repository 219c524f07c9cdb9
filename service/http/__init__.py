"""Transport: HTTP/1.1 connections (`connection.py`) answering inference themselves and every
other route through the FastAPI app (`app.py`); see service/README.md."""
