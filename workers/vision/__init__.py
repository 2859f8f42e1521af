"""Image and video measures the frames stage builds on (pure functions, no DB, no Celery).

- ``sampling``: PyAV decode with scene cuts and a regular sample (issue 3, item 1).
- ``tissue``: tissue mask and box, a crop clear of impurities, per-frame quality (items 4, 7).
- ``impurities``: narrator faces, text overlays, desktop or slide-software chrome (item 4).
- ``magnification``: Quilt's magnification bin from nuclear size (item 6).
- ``dedup``: perceptual hash bands for a corpus-wide near-duplicate index (item 5).
- ``learned``: the optional learned histology classifier and the detector ensemble (item 2).
"""
