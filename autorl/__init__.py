"""autorl: automated reinforcement learning on Optuna, Ray and stable-baselines3 (Ray Tune: ``executor: tune``
and :func:`autorl.api.tune_target`)."""

__version__ = "0.1.0"
