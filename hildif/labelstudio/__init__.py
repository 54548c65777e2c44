"""Everything hildif knows about Label Studio.

* :mod:`hildif.labelstudio.convert`: tasks and annotations <-> hildif records (pure functions; the rating template's
  choices and field names).
* :mod:`hildif.labelstudio.client`: :class:`LabelStudioClient`, the only code that imports ``label_studio_sdk``.
* :mod:`hildif.labelstudio.server`: start/stop a local Label Studio process (its own venv ``.venv-ls``).

The submodules are imported on use, so that ``import hildif.labelstudio`` does not load the SDK.
"""
