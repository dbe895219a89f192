"""Fine-tune a small model on created or human data.

Entry points: the `trainer` command (trainer.cli.main) and trainer.loop.train(config, task); the
learning-rate sweep is trainer.sweep. Importing this package imports nothing heavy.
"""
