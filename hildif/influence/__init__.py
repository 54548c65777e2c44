"""Influence functions (FastIF): which training examples helped the model on an anchor.

Sign convention everywhere: I(z, x) = -grad L(x)^T (H + damping * scale * I)^-1 grad L(z); NEGATIVE = helpful
(upweighting z lowers the anchor's loss), the ranking HILDIF shows first.

Modules, one job each (imported directly, so that importing one does not load FAISS or the engine):

``params``   which parameters are differentiated (FastIF's last two blocks + pooler + head, head only, all, regex)
``split``    the model cut into a frozen prefix (computed once per example) and a differentiable tail
``objective`` loss, gradient, Hessian operator and candidate dot products on a flat parameter vector
``solvers``  s_test by LiSSA, conjugate gradient or the explicit Hessian
``knn``      the FAISS prefilter, cached per model version and training set
``engine``   s_test and candidate scores for one model and training set
``explain``  anchors -> top-p influential training examples (what ``hildif explain`` and rounds call)
``anchors``  anchor selection: one strategy class per way (paper list, pairIDs, random, rule), one select_anchors
"""
