"""hildif's Label Studio ML backend: a Flask 3 app served by gunicorn (``python -m ml_backend`` or
``hildif backend serve``). See :mod:`ml_backend.app` for the endpoints and :mod:`ml_backend.model` for the model
class (shaped like label-studio-ml 2.x's LabelStudioMLBase)."""
