"""autorl: automated reinforcement learning on top of Optuna, Ray Tune and stable-baselines3."""

__version__ = "0.1.0"
