"""Keep the garbage collector's full passes short in a long-running server.

CPython's oldest-generation collection walks every tracked object. In the service that is torch, FastAPI,
SQLAlchemy and the loaded models (about a million objects): each full pass stopped the event loop for about 250 ms,
a dozen times a minute under load, and was the whole of the slowest requests' latency. Objects that live as long
as the process (imported modules, the app, a loaded bundle) are moved to the permanent generation once they exist
(:func:`gc.freeze`), so the collector only walks what requests create. Python's documentation gives the same
advice for long-lived heaps.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect the young generations, then move every object alive now out of the collector's reach.

    Called when the server has started, and after a bundle is loaded (in the server and in each inference
    process). Cheap (no full pass). A frozen object is still freed when its last reference goes, but never by the cycle
    collector, so call it only once long-lived objects exist.
    """
    gc.collect(1)
    gc.freeze()
