"""Experiments that compare configurations of HILDIF, with simulated annotators standing in for people.

* :mod:`hildif.experiments.panel`: the panel of simulated annotators (used by the ablation and the demo).
* :mod:`hildif.experiments.ablation`: the paper's eight configurations x top-p x seeds (Figure 1), resumable.
* :mod:`hildif.experiments.ablation_report`: mean +- std tables (Figure 1c, MNLI per configuration) and plots (1a, 1b).
"""
