"""hildif's Label Studio ML backend: a Flask 3 app served by gunicorn (``python -m ml_backend`` or
``hildif backend serve``). See :mod:`ml_backend.app` for the endpoints and :mod:`ml_backend.ls_model` for the model
class (shaped like label-studio-ml 2.x's LabelStudioMLBase).

A thin adapter: it converts Label Studio's HTTP JSON to calls of :class:`hildif.service.Service` and back, and adds
what only a server needs (auth, body checks, a persisted job queue, the webhook log). Modules: ``launch`` (options,
environment, gunicorn), ``wsgi`` and ``gunicorn.conf.py`` (running gunicorn directly), ``app`` (routes),
``ls_model`` (Label Studio JSON <-> service calls), ``runtime`` (process-wide state), ``handlers`` (job kinds),
``jobs`` (the queue), ``events`` (webhook counts), ``webhook_keys`` (the projects' webhook keys), ``schema`` (body
checks), ``settings``, ``worker`` (reads each request whole, then its thread pool), ``accesslog`` (escaped lines).
"""
