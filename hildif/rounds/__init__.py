"""One round of HILDIF (Algorithm 1) and its persisted state.

* :mod:`hildif.rounds.state`: the SQLite round database (:class:`RoundState`).
* :mod:`hildif.rounds.start`: select anchors, explain, push rating tasks (:func:`start_round`).
* :mod:`hildif.rounds.sync`: pull ratings, aggregate, augment, fine-tune, evaluate, serve (:func:`sync_round`).
* :mod:`hildif.rounds.status`: progress and agreement (:func:`round_status`).
* :mod:`hildif.rounds.report`: the per-sync round report.
"""
