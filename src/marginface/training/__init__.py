"""Training: the LightningModule, its callbacks, checkpoints, building from config, and train(cfg)."""
