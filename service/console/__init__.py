"""The web console's files: plain HTML, CSS and ES modules under `static/`, written for this
project and shipped as package data (no build step, nothing fetched from elsewhere at run time).
`service/http/routes/console.py` serves them; `api-docs.js` starts the API docs page's Swagger UI.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")
DOCS_SCRIPT = Path(__file__).with_name("api-docs.js")
