"""Image and video measures the frames stage builds on (pure functions, no DB, no Celery).

- ``sampling``: PyAV decode with scene cuts and a regular sample.
- ``tissue``: tissue mask and box, a crop clear of impurities, per-frame quality.
- ``impurities``: narrator faces, text overlays, desktop or slide-software chrome.
- ``magnification``: Quilt's magnification bin from nuclear size.
- ``dedup``: perceptual hash bands for a corpus-wide near-duplicate index.
- ``learned``: the optional learned histology classifier and the detector ensemble.
"""
