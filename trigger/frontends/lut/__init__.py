"""Look-up-table regressors: raw detector features -> compressed address -> table word.

Stages, each importing only the ones before it: ``config`` (trigger.yml),
``dataset`` (samples), ``binning`` (compression and address layout),
``regressor`` (Keras MLP or scikit-learn boosted trees), ``table`` (every
address evaluated), ``physics`` (resolution, turn-on, rate proxy) and ``build``
(the frontend: a firmware model of bucketize -> concat -> lookup ops, which the
shared bundle writer, vector generator and verifier handle like any design).
"""
