"""One router per resource: health, auth, users (and API tokens), models (the registry), predict, audit, ui."""
