"""Distil the student: tokenizer, student model, KD loss and loop, teacher-assistant, pretrained
initialisation, ONNX export."""
