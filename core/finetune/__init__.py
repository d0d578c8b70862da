"""LoRA fine-tuning: datasets and chat templates, the training job, runs with checkpoints and adapters."""
