"""The Gradio app (Hugging Face Space): ``space.app`` wires widgets to the pure ``space.handlers``."""
