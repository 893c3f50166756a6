"""Teachers: anything that returns a probability distribution over the taxonomy for a template."""

from training.teachers.base import Teacher, TeacherQuery, apply_temperature

__all__ = ["Teacher", "TeacherQuery", "apply_temperature"]
