"""Pages and ES modules served by the server: join, lobby, consult."""

from pathlib import Path

#: Folder served at ``/static/`` (CSS, ES modules, translations).
STATIC_DIR: Path = Path(__file__).resolve().parent / "static"

#: Folder of the HTML pages (``index.html`` at ``/``, ``consult.html`` at ``/join/{consult_id}``).
TEMPLATES_DIR: Path = Path(__file__).resolve().parent / "templates"
