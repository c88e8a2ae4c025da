"""One module per area of the dashboard; each exposes ``router`` (an ``APIRouter`` whose
routes use ``UiRoute``) and is listed in ``stoa.ui.app.PAGES``."""
