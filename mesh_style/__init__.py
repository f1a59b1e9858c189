"""mesh_style: repaint the texture of a 3D model in the style of a painting."""

__version__ = "0.1.0"
