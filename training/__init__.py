"""logdistill offline training: corpus, teachers, augmentation, distillation, evaluation, export.

Imports from `service` (the runtime contract), never the reverse.
"""
