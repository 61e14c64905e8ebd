"""What every learner family uses: the :class:`~agents.common.base.Agent` interface and argument
checks (:mod:`~agents.common.base`), the family-keyed registry (:mod:`~agents.common.registry`),
``evaluate`` and its record (:mod:`~agents.common.evaluation`), batched learners
(:mod:`~agents.common.batched`) and the linear-bandit building blocks (:mod:`~agents.common.linalg`).

A family package imports from here and never from another family.
"""
