"""Inference: a trained model rebuilt from its checkpoint, embedding, export, enrolment and identification."""
