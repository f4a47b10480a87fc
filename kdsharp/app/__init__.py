"""``kdsharp app``: a local web page to try the models (Gradio, the ``app`` extra).

    kdsharp app --port 7860 --votes votes.db

The page is :mod:`kdsharp.app.ui` (the only module that imports gradio); what it does lives in
plain functions: :mod:`kdsharp.app.processing` (uploads, sharpening, degradation, video),
:mod:`kdsharp.app.compare` (blind-comparison pairs) and :mod:`kdsharp.app.store` (the SQLite
votes). The ranking of the votes is :mod:`kdsharp.evaluate.votes` (``kdsharp eval --votes``).
"""
