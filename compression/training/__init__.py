"""Training: fine-tuning, distillation (trainer, teachers, losses), augmentation."""
