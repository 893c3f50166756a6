"""The online loop: answer escalations with a teacher (teach), retrain and promote (retrain)."""
